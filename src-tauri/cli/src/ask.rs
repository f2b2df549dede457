//! `perimeter ask`: one question to the model, the answer streamed to stdout as it decodes.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use perimeter_engine::inference::{
    CancellationToken, ChatMessage, ComputeDtype, GenerationParams, LoadOptions, StopReason,
};
use serde_json::json;

use crate::load::load_model;

const SYSTEM_PROMPT: &str = "You are Perimeter, a coding assistant running entirely on the user's machine. \
Answer concisely and precisely.";

#[derive(Args)]
pub struct AskArgs {
    /// The question.
    question: String,
    /// An installed model's name, or the path of a .gguf file (default: the largest installed).
    #[arg(long)]
    model: Option<String>,
    /// One JSON event per line: {"event":"token"}, then {"event":"done"} or {"event":"error"}.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; without it decoding is greedy (deterministic).
    #[arg(long)]
    temperature: Option<f64>,
    /// Precision of activations: auto, f32, f16, bf16.
    #[arg(long, default_value = "auto")]
    dtype: ComputeDtype,
}

pub async fn run(args: AskArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match answer(args).await {
        Ok(code) => Ok(code),
        Err(e) if json => {
            println!("{}", json!({ "event": "error", "message": format!("{e:#}") }));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e),
    }
}

async fn answer(args: AskArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions { dtype: args.dtype, ..LoadOptions::default() };
    let model = load_model(args.model.as_deref(), &options, !args.json).await?;

    let cancel = CancellationToken::new();
    // Ctrl-C stops generation and still prints what was produced; a second one exits.
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let messages = [ChatMessage::system(SYSTEM_PROMPT), ChatMessage::user(&args.question)];
    let params = GenerationParams { max_tokens: args.max_tokens, temperature: args.temperature };
    let json = args.json;
    let mut sink = |text: &str| {
        let mut stdout = std::io::stdout();
        let written = if json {
            writeln!(stdout, "{}", json!({ "event": "token", "text": text }))
        } else {
            write!(stdout, "{text}")
        };
        // A closed stdout (e.g. `| head`) stops generation instead of wasting the CPU.
        written.and_then(|_| stdout.flush()).is_ok()
    };
    let generation = model.generate(&messages, &params, &mut sink, &cancel).await?;

    if json {
        let done = json!({ "event": "done", "stop": generation.stop, "usage": generation.usage });
        println!("{done}");
    } else {
        if !generation.text.ends_with('\n') {
            println!();
        }
        let u = &generation.usage;
        let mut line = format!("{} tokens", u.completion_tokens);
        if let Some(r) = u.decode_tokens_per_s {
            line += &format!(", {r:.1} tok/s");
        }
        if let Some(t) = u.time_to_first_token_ms {
            line += &format!(", first token after {:.2} s", t / 1000.0);
        }
        if generation.stop == StopReason::Cancelled {
            line += " (stopped)";
        }
        eprintln!("— {line}");
    }
    Ok(ExitCode::SUCCESS)
}
