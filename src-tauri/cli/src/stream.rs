//! Streaming a generation to the terminal: tokens to stdout as they decode, Ctrl-C to stop.

use std::io::Write;
use std::sync::Arc;

use perimeter_engine::inference::{CancellationToken, Generation, StopReason, Usage};
use perimeter_engine::session::Session;
use serde_json::json;

/// A token that Ctrl-C cancels (generation stops and what was produced is still reported);
/// a second Ctrl-C exits.
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    cancel
}

/// Ctrl-C stops the session's jobs in flight (a generation keeps and reports what it
/// produced, an indexing run what it committed); a second Ctrl-C exits.
pub fn stop_on_ctrl_c(session: &Arc<Session>) {
    let session = session.clone();
    let interrupted = cancel_on_ctrl_c();
    tokio::spawn(async move {
        interrupted.cancelled().await;
        session.shut_down();
    });
}

/// Writes each piece of text to stdout, raw or as `{"event":"token"}` lines. A closed
/// stdout (e.g. `| head`) stops generation instead of wasting the CPU.
pub fn stdout_sink(json: bool) -> impl FnMut(&str) -> bool {
    move |text: &str| {
        let mut stdout = std::io::stdout();
        let written = if json {
            writeln!(stdout, "{}", json!({ "event": "token", "text": text }))
        } else {
            write!(stdout, "{text}")
        };
        written.and_then(|_| stdout.flush()).is_ok()
    }
}

/// Ends the streamed text with a newline and prints a one-line summary on stderr.
pub fn finish_text(text: &str, stop: StopReason, usage: &Usage) {
    if !text.ends_with('\n') {
        println!();
    }
    let mut line = format!("{} tokens", usage.completion_tokens);
    if let Some(r) = usage.decode_tokens_per_s {
        line += &format!(", {r:.1} tok/s");
    }
    if let Some(t) = usage.time_to_first_token_ms {
        line += &format!(", first token after {:.2} s", t / 1000.0);
    }
    match stop {
        StopReason::Cancelled => line += " (stopped)",
        StopReason::Length => line += " (reached --max-tokens)",
        StopReason::ConnectionLost => line += " (the connection to the server broke: the text above is what arrived)",
        StopReason::EndOfText => {}
    }
    eprintln!("— {line}");
}

/// The summary of a plain generation.
pub fn finish(generation: &Generation, json: bool) {
    if json {
        println!("{}", json!({ "event": "done", "stop": generation.stop, "usage": generation.usage }));
    } else {
        finish_text(&generation.text, generation.stop, &generation.usage);
    }
}

/// Prints an error as a JSON event (for `--json` callers) and turns it into a failure.
pub fn json_error(e: &anyhow::Error) -> std::process::ExitCode {
    println!("{}", json!({ "event": "error", "message": format!("{e:#}") }));
    std::process::ExitCode::FAILURE
}
