//! `perimeter`: the engine from a terminal. Only this crate knows about flags, progress bars
//! and exit codes; every command is a thin call into `perimeter-engine`.

mod agent;
mod ask;
mod bench;
mod bench_edits;
mod bench_semantic;
mod edit;
mod hw;
mod index;
mod load;
mod models;
mod network;
mod progress;
mod serve;
mod stream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "perimeter", version, about = "Perimeter: an offline coding assistant, from the terminal")]
struct Cli {
    /// CPU threads for inference (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show this machine's hardware, how each catalog model fits, and the recommended one.
    Hw(hw::HwArgs),
    /// List, download, import, verify and remove models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Ask a question (about a project, with --project); the answer streams to stdout.
    Ask(ask::AskArgs),
    /// Let the agent work on a task in a project: it searches, reads, edits and runs
    /// commands (confined, as approved) until done; every change can be rewound.
    Agent(agent::AgentArgs),
    /// List, show or delete a project's conversations.
    Conversations(ask::ConversationsArgs),
    /// Ask for a change to a project; prints the proposed diff (--apply to write it).
    Edit(edit::EditArgs),
    /// Apply a proposal (the latest, or by id), whole or chosen hunks/files.
    Apply(edit::ApplyArgs),
    /// Undo an applied change (the latest, or by id), restoring the exact previous bytes.
    Undo(edit::UndoArgs),
    /// The changes applied to a project.
    History(edit::HistoryArgs),
    /// Add, list and remove projects.
    #[command(subcommand)]
    Projects(index::ProjectsCommand),
    /// Index a project folder (only what changed since last time is re-read).
    Index(index::IndexArgs),
    /// Search a project: ranked chunks (or files, with --files).
    Search(index::SearchArgs),
    /// Index a project and keep the index fresh as files change.
    Watch(index::WatchArgs),
    /// Measure performance.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve the model over an OpenAI-compatible API (loopback only unless --token is set).
    Serve(serve::ServeArgs),
    /// The network policy (offline by default) and the log of every connection made.
    Network {
        #[command(subcommand)]
        command: Option<network::NetworkCommand>,
    },
}

fn main() -> ExitCode {
    if let Err(e) = perimeter_engine::hardware::require_compiled_simd() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // Before any thread starts: the inference thread pool reads this once.
    if let Some(n) = cli.threads {
        perimeter_engine::inference::set_cpu_threads(n);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Hw(args) => hw::run(args),
            Command::Network { command } => network::run(command),
            Command::Serve(args) => serve::run(args).await,
            Command::Models(cmd) => models::run(cmd).await,
            Command::Ask(args) => ask::run(args).await,
            Command::Conversations(args) => ask::run_conversations(args),
            Command::Edit(args) => edit::run_edit(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Apply(args) => edit::run_apply(args),
            Command::Undo(args) => edit::run_undo(args),
            Command::History(args) => edit::run_history(args),
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Index(args) => index::run_index(args),
            Command::Projects(cmd) => index::run_projects(cmd),
            Command::Search(args) => index::run_search(args),
            Command::Watch(args) => index::run_watch(args).await,
        }
    });
    // The inference engine keeps worker threads; do not wait for them on the way out.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
