//! `perimeter ask`: a question to the model, the answer streamed to stdout as it decodes.
//! With `--project`, the answer is grounded in the project's index and kept in a conversation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use perimeter_engine::assistant::{PromptReport, RequestOptions, Turn};
use perimeter_engine::session::{Answered, ConversationChoice, Streams};
use perimeter_engine::inference::{ChatMessage, GenerationParams, StopReason};
use serde_json::json;

use crate::load::ModelChoice;
use crate::stream::{finish, finish_text, json_error, stdout_sink, stop_on_ctrl_c};

const SYSTEM_PROMPT: &str = "You are Perimeter, a coding assistant running entirely on the user's machine. \
Answer concisely and precisely.";

#[derive(Args)]
pub struct AskArgs {
    /// The question.
    question: String,
    /// Answer from this project folder (indexed first; only changes are re-read).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Continue this conversation (`perimeter conversations --project DIR` lists them).
    #[arg(long, requires = "project", conflicts_with = "continue_last")]
    conversation: Option<String>,
    /// Continue the project's most recent conversation.
    #[arg(long = "continue", requires = "project")]
    continue_last: bool,
    /// After the answer, list the excerpts that went into the prompt (path, lines, tokens).
    #[arg(long, requires = "project")]
    show_context: bool,
    #[command(flatten)]
    model: ModelChoice,
    /// One JSON event per line: {"event":"token"}, then {"event":"done"} or {"event":"error"}.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; without it decoding is greedy (deterministic).
    #[arg(long)]
    temperature: Option<f64>,
    /// Use at most this many tokens of the model's context window (prompts cost time on a CPU).
    #[arg(long)]
    context_tokens: Option<usize>,
    /// Excerpts to retrieve from the project.
    #[arg(long, default_value_t = 8)]
    excerpts: usize,
}

pub async fn run(args: AskArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let result = if args.project.is_some() { ask_project(args).await } else { ask_model(args).await };
    match result {
        Err(e) if json => Ok(json_error(&e)),
        other => other,
    }
}

/// A question to the model alone.
async fn ask_model(args: AskArgs) -> anyhow::Result<ExitCode> {
    let session = Arc::new(args.model.session()?);
    stop_on_ctrl_c(&session);
    let messages = [ChatMessage::system(SYSTEM_PROMPT), ChatMessage::user(&args.question)];
    let params = GenerationParams { max_tokens: args.max_tokens, temperature: args.temperature, json_schema: None };
    let mut spinner = crate::load::Spinner::new(!args.json);
    let streams = Streams { model: &mut |e| spinner.show(e), text: &mut stdout_sink(args.json) };
    let generation = session.chat(&messages, &params, "ask", streams).await?;
    finish(&generation, args.json);
    Ok(exit_code(generation.stop))
}

/// A question about a project, in a conversation that is saved after every answer.
async fn ask_project(args: AskArgs) -> anyhow::Result<ExitCode> {
    let dir = args.project.clone().expect("checked by the caller");
    let session = Arc::new(args.model.session()?);
    stop_on_ctrl_c(&session);
    let index = crate::index::open(&session, &dir)?;
    crate::index::update(&session, &index, !args.json)?;
    let conversation = match (&args.conversation, args.continue_last) {
        (Some(id), _) => ConversationChoice::Id(id.clone()),
        (None, true) => ConversationChoice::Latest,
        (None, false) => ConversationChoice::New,
    };
    let options = RequestOptions {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        max_context_tokens: args.context_tokens,
        retrieve: args.excerpts,
    };
    let mut spinner = crate::load::Spinner::new(!args.json);
    let streams = Streams { model: &mut |e| spinner.show(e), text: &mut stdout_sink(args.json) };
    let Answered { conversation, turn } = session.ask(index.root(), conversation, &args.question, &options, "ask", streams).await?;

    if args.json {
        let done = json!({
            "event": "done",
            "conversation": conversation.id,
            "model": turn.model,
            "stop": turn.stop,
            "usage": turn.usage,
            "context": turn.context,
            "citations": turn.citations,
        });
        println!("{done}");
    } else {
        finish_text(&turn.answer, turn.stop, &turn.usage);
        print_citations(&turn);
        if args.show_context {
            print_context(&turn.context);
        }
        for note in &turn.context.notes {
            eprintln!("note: {note}");
        }
        eprintln!("conversation {} — continue it with --continue", conversation.id);
    }
    Ok(exit_code(turn.stop))
}

/// 4 when a server's connection broke mid-answer (the partial answer was printed and kept).
fn exit_code(stop: StopReason) -> ExitCode {
    if stop == StopReason::ConnectionLost {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_citations(turn: &Turn) {
    if turn.citations.is_empty() {
        return;
    }
    let list: Vec<String> = turn
        .citations
        .iter()
        .map(|c| match &c.problem {
            None => c.text.clone(),
            Some(p) => format!("{} (not found: {p})", c.text),
        })
        .collect();
    eprintln!("cited: {}", list.join(", "));
}

/// The `--show-context` table: what the model was shown, and what was left out.
pub fn print_context(r: &PromptReport) {
    println!(
        "\ncontext: {} of {} tokens in the prompt, {} left for the answer; {} earlier exchange(s)",
        r.prompt_tokens, r.context_window, r.answer_tokens, r.exchanges_included
    );
    for e in &r.included {
        println!("  {}:{}-{}  {} tokens  (score {:.2})", e.path, e.start_line, e.end_line, e.tokens, e.score);
    }
    for e in &r.dropped {
        println!("  left out: {}:{}-{}  {} tokens", e.path, e.start_line, e.end_line, e.tokens);
    }
}

#[derive(Args)]
pub struct ConversationsArgs {
    #[arg(long)]
    project: PathBuf,
    /// Delete this conversation.
    #[arg(long)]
    delete: Option<String>,
    /// Print this conversation in full.
    #[arg(long, conflicts_with = "delete")]
    show: Option<String>,
    #[arg(long)]
    json: bool,
}

/// `perimeter conversations`: list, show or delete a project's conversations.
pub fn run_conversations(args: ConversationsArgs) -> anyhow::Result<ExitCode> {
    let session = crate::index::session()?;
    let index = crate::index::open(&session, &args.project)?;
    let store = session.conversations(index.root())?;
    if let Some(id) = &args.delete {
        if !store.delete(id)? {
            anyhow::bail!("no conversation {id} in this project");
        }
        println!("deleted conversation {id}");
    } else if let Some(id) = &args.show {
        let c = store.load(id)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            for t in &c.turns {
                println!("> {}\n\n{}\n", t.question, t.answer.trim_end());
            }
        }
    } else {
        let all = store.list()?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else if all.is_empty() {
            println!("no conversations yet — `perimeter ask --project DIR \"question\"`");
        } else {
            for c in all {
                println!("{}  {:>3} turn(s)  {}", c.id, c.turns, c.title);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
