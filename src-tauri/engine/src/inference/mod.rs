//! Text generation: the request and result types, the token sink, cancellation, the
//! in-process backend over mistral.rs (`local`) and the company server's (`remote`), behind
//! one [`Model`].
//!
//! Shape of a generation: the caller passes messages, parameters, a `TokenSink` that gets
//! each piece of text as it is decoded and returns `false` to stop, and a `CancellationToken`
//! another task (Ctrl-C, a Stop button, a closing window) can trigger. Either way the engine
//! stops at the next token and reports what it produced so far.

mod device;
mod local;
mod model;
pub mod remote;

pub use crate::models::gguf::SUPPORTED_ARCHITECTURES;
pub use device::{cuda_unusable, LayerSplit, Placement};
pub use local::{ComputeDtype, LoadOptions, LocalModel};
pub use model::Model;
pub use remote::{RemoteModel, RemoteOptions};
pub use crate::CancellationToken;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Who wrote a chat message.
pub enum Role {
    /// The instructions the model follows.
    System,
    /// The user (or the prompt built for them).
    User,
    /// The model.
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// One message of a chat, before the model's chat template is applied.
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::System, content: content.into() }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: content.into() }
    }
    /// An assistant message (an earlier answer).
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: content.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// How to generate an answer.
pub struct GenerationParams {
    /// Most tokens the answer may take.
    pub max_tokens: usize,
    /// `None` decodes greedily (deterministic); otherwise sampled at this temperature.
    pub temperature: Option<f64>,
    /// Hold the answer to this JSON schema (constrained decoding); free text when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams { max_tokens: 512, temperature: None, json_schema: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
/// Why a generation ended.
pub enum StopReason {
    /// The model ended its answer.
    EndOfText,
    /// `max_tokens` was reached.
    Length,
    /// The sink returned `false` or the cancellation token fired.
    Cancelled,
    /// A remote server's connection broke mid-answer; the text is what arrived before.
    ConnectionLost,
}

/// Figures for one generation. Rates are per second of wall time. The default is "nothing
/// generated" (an answer that came from elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Usage {
    /// Tokens in the prompt after the chat template; `None` when generation was cancelled
    /// before the engine reported it.
    pub prompt_tokens: Option<usize>,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// From the request to the first answer token; `None` when none came.
    pub time_to_first_token_ms: Option<f64>,
    /// Prompt processing speed, when the engine reported it.
    pub prompt_tokens_per_s: Option<f64>,
    /// Decoding speed, when the engine reported it.
    pub decode_tokens_per_s: Option<f64>,
    /// Wall time of the whole request.
    pub total_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A finished (or stopped) generation.
pub struct Generation {
    /// The answer's text.
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Its tokens and timings.
    pub usage: Usage,
}

/// Receives decoded text as it is produced. Return `false` to stop generating.
pub trait TokenSink {
    /// Takes the next piece of text; `false` stops the generation.
    fn token(&mut self, text: &str) -> bool;
}

impl<F: FnMut(&str) -> bool> TokenSink for F {
    fn token(&mut self, text: &str) -> bool {
        self(text)
    }
}

/// Milliseconds, for [`Usage`].
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `count` per second over `secs`; `None` when there is nothing to divide.
pub(crate) fn rate(count: usize, secs: f64) -> Option<f64> {
    (secs > 0.0 && count > 0).then(|| count as f64 / secs)
}

/// Sets the number of CPU threads inference uses. Call it once, before the first model is
/// loaded and before other threads start (it sets `RAYON_NUM_THREADS`, which candle reads).
pub fn set_cpu_threads(threads: usize) {
    let threads = threads.max(1);
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    // Fails only if the pool already exists, in which case the variable above still applies
    // to candle's own thread count.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// The instructions the quantized CPU kernels sum byte products with on this machine
/// (`avx2`, or `avx-vnni` / `avx512-vnni` where the CPU has them; `CANDLE_CPU_BYTE_DOT` picks
/// another it has), for benchmark reports.
pub fn cpu_kernels() -> &'static str {
    #[cfg(target_feature = "avx2")]
    return candle_core::quantized::avx::byte_dot().name();
    #[cfg(not(target_feature = "avx2"))]
    return "portable";
}

/// The thread count inference will use.
pub fn cpu_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
