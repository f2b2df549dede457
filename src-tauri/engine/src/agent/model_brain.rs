//! A loaded model as the agent's brain: its answers choose the calls, and its edits go
//! through the edit machinery in the whole-file format (the file the agent named shown whole).

use super::Brain;
use crate::assistant::{self, RequestOptions};
use crate::context::Exchange;
use crate::edit::{EditFormat, Proposal};
use crate::error::Result;
use crate::index::ProjectIndex;
use crate::inference::{ChatMessage, Generation, GenerationParams, Model};
use crate::CancellationToken;

/// `model` deciding for the agent (the session's, or one a benchmark loaded).
pub struct ModelBrain<'a> {
    /// The model asked for every call and edit.
    pub model: &'a Model,
}

impl Brain for ModelBrain<'_> {
    async fn answer(&self, messages: &[ChatMessage], params: &GenerationParams, cancel: &CancellationToken) -> Result<Generation> {
        self.model.generate(messages, params, &mut |_: &str| true, cancel).await
    }

    async fn propose(&self, index: &ProjectIndex, history: &[Exchange], instruction: &str, cancel: &CancellationToken) -> Result<Proposal> {
        // Files the instruction names are all shown whole; one more is retrieved only when it names none.
        let options = RequestOptions { retrieve: 1, ..RequestOptions::for_edits() };
        assistant::propose_edit(self.model, index, history, instruction, Some(EditFormat::WholeFile), &options, &mut |_: &str| true, cancel)
            .await
    }
}
