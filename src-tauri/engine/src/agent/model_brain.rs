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
    async fn answer(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_text: &mut (dyn FnMut(&str) + Send),
        cancel: &CancellationToken,
    ) -> Result<Generation> {
        self.model.generate(messages, params, &mut |t: &str| keep_going(on_text, t), cancel).await
    }

    async fn propose(
        &self,
        index: &ProjectIndex,
        history: &[Exchange],
        instruction: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
        cancel: &CancellationToken,
    ) -> Result<Proposal> {
        // Files the instruction names are all shown whole; one more is retrieved only when it names none.
        let options = RequestOptions { retrieve: 1, ..RequestOptions::for_edits() };
        let format = Some(EditFormat::WholeFile);
        assistant::propose_edit(self.model, index, history, instruction, format, &options, &mut |t: &str| keep_going(on_text, t), cancel)
            .await
    }
}

/// Passes a piece of the answer on; the run stops through its cancellation token, not here.
fn keep_going(on_text: &mut (dyn FnMut(&str) + Send), text: &str) -> bool {
    on_text(text);
    true
}
