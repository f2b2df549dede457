//! The model a request goes to: in-process on this machine, or the company's server.

use super::{CancellationToken, ChatMessage, Generation, GenerationParams, LocalModel, RemoteModel, TokenSink};
use crate::Result;

/// A model ready to answer.
pub enum Model {
    /// Loaded in this process.
    Local(LocalModel),
    /// The company's inference server; prompts go there.
    Remote(RemoteModel),
}

impl Model {
    /// The model's name, as answers and records give it.
    pub fn name(&self) -> String {
        match self {
            Model::Local(m) => m.name(),
            Model::Remote(m) => m.name(),
        }
    }

    /// The context window in tokens.
    pub fn context_length(&self) -> usize {
        match self {
            Model::Local(m) => m.context_length(),
            Model::Remote(m) => m.context_length(),
        }
    }

    /// Where it runs, in words: "CPU", the GPU's name, or the company server's host.
    pub fn backend(&self) -> String {
        match self {
            Model::Local(m) => m.backend.clone(),
            Model::Remote(m) => format!("company server {}", m.host()),
        }
    }

    /// For the user when a local model did not fit on the GPU and runs partly or wholly on
    /// the CPU; `None` otherwise.
    pub fn placement_note(&self) -> Option<String> {
        match self {
            Model::Local(m) => m.placement_note.clone(),
            Model::Remote(_) => None,
        }
    }

    /// The server the prompt is sent to; `None` when it never leaves this machine.
    pub fn remote_host(&self) -> Option<&str> {
        match self {
            Model::Local(_) => None,
            Model::Remote(m) => Some(m.host()),
        }
    }

    /// Parameters, when known (a GGUF file says; a server does not).
    pub fn parameter_count(&self) -> Option<u64> {
        match self {
            Model::Local(m) => Some(m.info.parameter_count),
            Model::Remote(_) => None,
        }
    }

    /// Tokens `messages` take. A server's tokenizer is not on this machine, so for a remote
    /// model it is a cautious estimate (3 bytes a token, plus a few per message for the template).
    pub async fn count_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        match self {
            Model::Local(m) => m.count_prompt_tokens(messages).await,
            Model::Remote(_) => Ok(messages.iter().map(|m| estimate(&m.content) + 8).sum::<usize>() + 8),
        }
    }

    /// Tokens `text` takes (an estimate for a remote model, as for [`Model::count_prompt_tokens`]).
    pub async fn count_text_tokens(&self, text: &str) -> Result<usize> {
        match self {
            Model::Local(m) => m.count_text_tokens(text).await,
            Model::Remote(_) => Ok(estimate(text)),
        }
    }

    /// Generates an answer to `messages`, streaming its text into `sink`; stops at `cancel`.
    pub async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        sink: &mut (dyn TokenSink + Send),
        cancel: &CancellationToken,
    ) -> Result<Generation> {
        match self {
            Model::Local(m) => m.generate(messages, params, sink, cancel).await,
            Model::Remote(m) => m.generate(messages, params, sink, cancel).await,
        }
    }
}

fn estimate(text: &str) -> usize {
    text.len().div_ceil(3)
}
