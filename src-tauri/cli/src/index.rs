//! `perimeter index`, `perimeter search` and `perimeter watch`: a project's index from a terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use perimeter_engine::embed::Embedder;
use perimeter_engine::index::{EmbedSummary, IndexSummary, ProjectIndex, SearchMode, SearchOptions};
use perimeter_engine::session::{Overrides, Session};
use serde_json::json;

#[derive(Args)]
pub struct IndexArgs {
    /// The project folder.
    dir: PathBuf,
    /// Then embed its source files for search by meaning (with the default embedding model,
    /// or --embedder), as the app does after indexing.
    #[arg(long)]
    embed: bool,
    /// The embedding model's folder (default: all-minilm-l6-v2 in the app's models folder).
    #[arg(long)]
    embedder: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SearchArgs {
    /// The project folder (indexed first if needed; only changes are re-read).
    dir: PathBuf,
    query: String,
    /// Rank files instead of chunks.
    #[arg(long)]
    files: bool,
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Only paths under this prefix.
    #[arg(long)]
    path: Option<String>,
    /// Only this language (rust, python, go, typescript, …).
    #[arg(long)]
    lang: Option<String>,
    /// lexical (the code's words), semantic (meaning, from an embedding model) or hybrid
    /// (both fused). The first semantic or hybrid search embeds the project's source files
    /// (a progress bar; later searches only embed what changed).
    #[arg(long, default_value = "lexical")]
    mode: SearchMode,
    /// The embedding model's folder (default: all-minilm-l6-v2 in the app's models folder).
    #[arg(long)]
    embedder: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    dir: PathBuf,
}

/// The session of a command that needs no model, with Ctrl-C stopping its jobs.
pub(crate) fn session() -> anyhow::Result<Arc<Session>> {
    let session = Arc::new(Session::open(Overrides::default())?);
    crate::stream::stop_on_ctrl_c(&session);
    Ok(session)
}

/// Adds `dir` to the projects (as the app's "Open folder") and opens its index.
pub(crate) fn open(session: &Session, dir: &Path) -> anyhow::Result<Arc<ProjectIndex>> {
    Ok(session.add_project(dir)?.1)
}

#[derive(clap::Subcommand)]
pub enum ProjectsCommand {
    /// The projects added so far.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a project folder and index it.
    Add { dir: PathBuf },
    /// Remove a project and delete its index (the folder itself is not touched).
    Remove { dir: PathBuf },
}

pub fn run_projects(cmd: ProjectsCommand) -> anyhow::Result<ExitCode> {
    let session = session()?;
    match cmd {
        ProjectsCommand::List { json } => {
            let all = session.project_list().list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no projects yet — `perimeter projects add DIR`");
            } else {
                for p in all {
                    println!("{:<24} {}", p.name, p.root.display());
                }
            }
        }
        ProjectsCommand::Add { dir } => {
            let index = open(&session, &dir)?;
            let s = update(&session, &index, true)?;
            println!("added {} ({} files indexed)", index.root().display(), s.files_indexed + s.files_unchanged);
        }
        ProjectsCommand::Remove { dir } => match session.remove_project(&dir)? {
            Some(p) => println!("removed {} and its index", p.root.display()),
            None => anyhow::bail!("{} is not a project; `perimeter projects list` shows them", dir.display()),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Brings the project's index up to date with a progress bar (files, MB/s, ETA), as a
/// session job: Ctrl-C stops it cleanly, keeping what was committed.
pub(crate) fn update(session: &Session, index: &ProjectIndex, show: bool) -> anyhow::Result<IndexSummary> {
    let bar = if show { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("indexing [{bar:30}] {pos}/{len} files  {msg}  ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let summary = session.index_project(index.root(), &mut |p| {
        bar.set_length(p.files_total as u64);
        bar.set_position(p.files_done as u64);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{:.1} MB/s", p.bytes_done as f64 / 1e6 / secs));
    });
    bar.finish_and_clear();
    Ok(summary?)
}

pub fn run_index(args: IndexArgs) -> anyhow::Result<ExitCode> {
    let session = session()?;
    let index = open(&session, &args.dir)?;
    let s = update(&session, &index, !args.json)?;
    let embedded = if args.embed && !s.cancelled { semantic_ready(&session, &index, args.embedder, !args.json) } else { None };
    if args.json {
        let mut out = serde_json::to_value(&s)?;
        if let Some(e) = &embedded {
            out["embedding"] = serde_json::to_value(e)?;
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} files indexed ({} chunks, {:.1} MB) in {:.2} s; {} unchanged, {} removed{}",
            s.files_indexed,
            s.chunks_indexed,
            s.bytes_indexed as f64 / 1e6,
            s.elapsed_ms / 1000.0,
            s.files_unchanged,
            s.files_removed,
            if s.cancelled { "; stopped early" } else { "" }
        );
        if s.skipped.total() > 0 {
            let reasons: Vec<String> = s.skipped.0.iter().map(|(k, v)| format!("{v} {}", k.replace('_', " "))).collect();
            println!("skipped: {}", reasons.join(", "));
        }
    }
    Ok(if s.cancelled { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

pub fn run_search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let session = session()?;
    let index = open(&session, &args.dir)?;
    update(&session, &index, !args.json)?;
    let options = SearchOptions { limit: args.limit, path_prefix: args.path, language: args.lang };
    let mode = match args.mode {
        SearchMode::Lexical => SearchMode::Lexical,
        _ if semantic_ready(&session, &index, args.embedder, !args.json).is_some() => args.mode,
        _ => SearchMode::Lexical,
    };
    let results = session.search_project(index.root(), &args.query, &options, mode)?;
    if args.json {
        let out = if args.files {
            serde_json::to_value(&results.files)?
        } else {
            json!(results
                .chunks
                .iter()
                .map(|c| json!({"path": c.path, "start_line": c.start_line, "end_line": c.end_line, "score": c.score, "text": c.text}))
                .collect::<Vec<_>>())
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if args.files {
        for f in &results.files {
            println!("{:8.3}  {}", f.score, f.path);
        }
    } else {
        for c in &results.chunks {
            println!("{}:{}-{}  ({:.3})", c.path, c.start_line, c.end_line, c.score);
            for line in c.text.lines().take(6) {
                println!("    {line}");
            }
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the embedding model (`dir`, or the default one) and embeds what the project lacks,
/// with a progress bar. Any failure is a notice, not an error: search goes on lexically.
fn semantic_ready(session: &Session, index: &ProjectIndex, dir: Option<PathBuf>, show: bool) -> Option<EmbedSummary> {
    let attached = match dir {
        Some(dir) => Embedder::load(&dir).and_then(|e| session.use_embedder(index.root(), Arc::new(e))).map_err(|e| e.to_string()),
        None => session.embedder().map(|_| ()),
    };
    let ready = attached.and_then(|()| {
        let bar = if show { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("embedding [{bar:30}] {pos}/{len} chunks  {per_sec}  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let summary = session.embed_project(index.root(), &mut |p| {
            bar.set_length(p.chunks_total as u64);
            bar.set_position(p.chunks_done as u64);
        });
        bar.finish_and_clear();
        match summary {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("no embedding model is attached; search is lexical".to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    match ready {
        Ok(s) => {
            if show && s.chunks_embedded > 0 {
                println!("{} chunks embedded for search by meaning in {:.1} s", s.chunks_embedded, s.elapsed_ms / 1000.0);
            }
            Some(s)
        }
        Err(e) => {
            eprintln!("notice: {e}");
            None
        }
    }
}

pub async fn run_watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let session = session()?;
    let index = open(&session, &args.dir)?;
    let s = update(&session, &index, true)?;
    println!("watching {} ({} files indexed, {} unchanged); Ctrl-C to stop", index.root().display(), s.files_indexed, s.files_unchanged);
    let _watcher = perimeter_engine::index::watch::watch(index.clone(), |result, paths| match result {
        Ok(s) => println!(
            "updated: {} indexed, {} removed ({} paths, {:.0} ms): {}",
            s.files_indexed,
            s.files_removed,
            paths.len(),
            s.elapsed_ms,
            paths.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ),
        Err(e) => eprintln!("error: {e}"),
    })?;
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
