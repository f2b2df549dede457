//! The requests both hosts make of a session: a question in a conversation (or to the model
//! alone), a change proposed, applied and undone. Each runs as a job the host can cancel, loads the model on
//! first use (telling the host), and keeps its result in the project's data folder.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::{ModelEvent, Session};
use crate::assistant::{self, Conversation, ConversationSummary, Conversations, RequestOptions, Turn};
use crate::context::{Exchange, PromptReport};
use crate::edit::{self, Applied, AppliedChange, EditAnswer, EditFormat, Proposal, Proposals, Selection};
use crate::error::{Error, Result};
use crate::inference::{ChatMessage, Generation, GenerationParams, StopReason, TokenSink, Usage};

/// Where a request's progress goes as it happens: the model's load, and the answer's text
/// (the sink returns `false` to stop, e.g. a closed pipe).
pub struct Streams<'a> {
    /// Told when a model is loaded for the request.
    pub model: &'a mut (dyn FnMut(ModelEvent) + Send),
    /// Takes the answer's text as it is generated.
    pub text: &'a mut (dyn TokenSink + Send),
}

/// Which conversation a question goes into.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationChoice {
    /// A new conversation.
    New,
    /// The project's most recently updated one (a new one if it has none).
    Latest,
    /// The conversation with this id.
    Id(String),
}

/// A question answered: the conversation it is now part of (saved), and the new turn.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Answered {
    /// The conversation, as it is now.
    pub conversation: ConversationSummary,
    /// The new turn.
    pub turn: Turn,
}

/// A change request.
#[derive(Debug, Clone)]
pub struct EditRequest {
    /// What to change, in the user's words.
    pub instruction: String,
    /// `None`: by the model's size.
    pub format: Option<EditFormat>,
    /// The model first sees the project's latest proposal, request and answer, as an
    /// earlier turn ("the tests still fail: …" after applying it).
    pub follow_up: bool,
    /// Answer length, temperature, context and retrieval.
    pub options: RequestOptions,
}

/// Ends a job when the request returns, however it returns.
pub(super) struct Job<'a> {
    session: &'a Session,
    id: &'a str,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.session.end_job(self.id);
    }
}

impl Session {
    pub(super) fn job<'a>(&'a self, id: &'a str) -> Result<(Job<'a>, crate::CancellationToken)> {
        let token = self.start_job(id).ok_or_else(|| Error::JobRunning { job: id.to_string() })?;
        Ok((Job { session: self, id }, token))
    }

    /// The project's conversations.
    pub fn conversations(&self, root: &Path) -> Result<Conversations> {
        Ok(self.open_project(root)?.0.conversations())
    }

    /// The project's proposals.
    pub fn proposals(&self, root: &Path) -> Result<Proposals> {
        Ok(self.open_project(root)?.0.proposals())
    }

    /// The project's applied changes, newest first.
    pub fn history(&self, root: &Path) -> Result<Vec<AppliedChange>> {
        self.open_project(root)?.0.history().list()
    }

    /// Answers `question` about the project at `root` in the chosen conversation, as job
    /// `job` ([`Session::cancel`] stops it; the partial answer is kept). The conversation is
    /// saved with the new turn.
    pub async fn ask(
        &self,
        root: &Path,
        conversation: ConversationChoice,
        question: &str,
        options: &RequestOptions,
        job: &str,
        streams: Streams<'_>,
    ) -> Result<Answered> {
        let (project, index) = self.open_project(root)?;
        let store = project.conversations();
        let mut convo = match conversation {
            ConversationChoice::New => Conversation::new(),
            ConversationChoice::Id(id) => store.load(&id)?,
            ConversationChoice::Latest => match store.list()?.first() {
                Some(latest) => store.load(&latest.id)?,
                None => Conversation::new(),
            },
        };
        let (_job, cancel) = self.job(job)?;
        let model = self.model(streams.model).await?;
        let turn = assistant::ask(&model, &index, &mut convo, question, options, streams.text, &cancel).await?;
        store.save(&convo)?;
        Ok(Answered { conversation: convo.summary(), turn })
    }

    /// Sends `messages` to the model alone (no project, nothing kept), as job `job`.
    pub async fn chat(&self, messages: &[ChatMessage], params: &GenerationParams, job: &str, streams: Streams<'_>) -> Result<Generation> {
        let (_job, cancel) = self.job(job)?;
        let model = self.model(streams.model).await?;
        model.generate(messages, params, streams.text, &cancel).await
    }

    /// Asks the model for the change `request` describes, as job `job`; the proposal is
    /// saved (nothing is written to the project until it is applied).
    pub async fn propose_edit(&self, root: &Path, request: &EditRequest, job: &str, streams: Streams<'_>) -> Result<Proposal> {
        let (project, index) = self.open_project(root)?;
        let proposals = project.proposals();
        let history = match request.follow_up {
            true => {
                let latest = proposals.latest()?.ok_or(Error::NoProposal)?;
                vec![Exchange { question: latest.instruction, sent: None, answer: latest.answer }]
            }
            false => Vec::new(),
        };
        let (_job, cancel) = self.job(job)?;
        let model = self.model(streams.model).await?;
        let proposal = assistant::propose_edit(
            &model,
            &index,
            &history,
            &request.instruction,
            request.format,
            &request.options,
            streams.text,
            &cancel,
        )
        .await?;
        proposals.save(&proposal)?;
        Ok(proposal)
    }

    /// A proposal from an answer written elsewhere (`source` names it), against the files as
    /// they are now; saved like any other. Since the prompt behind it is unknown, every edit
    /// in it is treated as blind.
    pub fn propose_from_answer(
        &self,
        root: &Path,
        instruction: &str,
        answer: String,
        source: &str,
        format: EditFormat,
    ) -> Result<Proposal> {
        let (project, index) = self.open_project(root)?;
        let answer = EditAnswer {
            model: source.to_string(),
            text: answer,
            stop: StopReason::EndOfText,
            usage: Usage::default(),
            context: PromptReport::default(),
        };
        let proposal = edit::propose(index.root(), &index.paths()?, instruction, format, answer, &HashMap::new(), false);
        project.proposals().save(&proposal)?;
        Ok(proposal)
    }

    /// Applies `selection` of proposal `id` (the latest when `None`) atomically. Changes
    /// held for confirmation are left out, and listed, unless `confirm`; a file changed
    /// since the proposal was made is a conflict and nothing is written.
    pub fn apply(&self, root: &Path, id: Option<&str>, selection: &Selection, confirm: bool) -> Result<Applied> {
        let (project, index) = self.open_project(root)?;
        let proposals = project.proposals();
        let proposal = match id {
            Some(id) => proposals.load(id)?,
            None => proposals.latest()?.ok_or(Error::NoProposal)?,
        };
        edit::apply_proposal(index.root(), &project.history(), &proposal, selection, confirm)
    }

    /// Puts back the files of applied change `id` (the latest not yet undone when `None`),
    /// unless they changed since.
    pub fn undo(&self, root: &Path, id: Option<&str>) -> Result<AppliedChange> {
        let (project, index) = self.open_project(root)?;
        edit::undo(index.root(), &project.history(), id)
    }
}
