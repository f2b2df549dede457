//! A project's conversations, kept in its data folder so they survive restarts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::citations::Citation;
use super::prompt::{Exchange, PromptReport};
use crate::error::Result;
use crate::inference::{StopReason, Usage};
use crate::records::{new_id, now, RecordDir};

/// One question and its answer, with what the answer was grounded on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Turn {
    /// The question as the user asked it.
    pub question: String,
    /// The user message as the model was sent it (excerpts and question): the next turn sends
    /// it again verbatim so the engine can reuse the conversation's computed prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// The answer as the model wrote it (partial when it was stopped).
    pub answer: String,
    /// Why the answer ended.
    pub stop: StopReason,
    /// The model that answered (its name, or the server's model).
    pub model: String,
    /// Unix seconds when the question was asked.
    pub asked_at: u64,
    /// Which excerpts went into the prompt (path, lines, tokens) and what was left out.
    pub context: PromptReport,
    /// The places in the project the answer cites, each checked.
    pub citations: Vec<Citation>,
    /// Tokens and timings of the answer.
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// A conversation with the model about one project, saved after every turn.
pub struct Conversation {
    /// Record id (also its file name in the project's `conversations/`).
    pub id: String,
    /// The first question's first line, shortened; empty until the first turn.
    pub title: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last turn.
    pub updated_at: u64,
    /// Oldest first.
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// An empty conversation with a fresh id.
    pub fn new() -> Conversation {
        let t = now();
        Conversation { id: new_id(), title: String::new(), created_at: t, updated_at: t, turns: Vec::new() }
    }

    /// Earlier exchanges to offer the next prompt. A stopped answer is kept: the user saw it.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.turns
            .iter()
            .map(|t| Exchange { question: t.question.clone(), sent: t.sent.clone(), answer: t.answer.clone() })
            .collect()
    }

    /// What a conversation list shows of it.
    pub fn summary(&self) -> ConversationSummary {
        ConversationSummary { id: self.id.clone(), title: self.title.clone(), updated_at: self.updated_at, turns: self.turns.len() }
    }

    /// Adds a turn; the first one also titles the conversation.
    pub fn push(&mut self, turn: Turn) {
        if self.title.is_empty() {
            self.title = title_from(&turn.question);
        }
        self.updated_at = turn.asked_at.max(self.updated_at);
        self.turns.push(turn);
    }
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation::new()
    }
}

/// The first line of the first question, shortened on a word boundary.
fn title_from(question: &str) -> String {
    const MAX: usize = 60;
    let line = question.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() <= MAX {
        return line.to_string();
    }
    let cut: String = line.chars().take(MAX).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A conversation as lists show it, without its turns.
pub struct ConversationSummary {
    /// The conversation's record id.
    pub id: String,
    /// See [`Conversation::title`].
    pub title: String,
    /// Unix seconds of the last turn.
    pub updated_at: u64,
    /// How many turns it has.
    pub turns: usize,
}

/// A project's saved conversations (one JSON record each).
pub struct Conversations {
    records: RecordDir,
}

impl Conversations {
    /// The conversations in a project's data folder.
    pub fn new(project_data: &Path) -> Conversations {
        Conversations { records: RecordDir::new(project_data.join("conversations"), "conversation") }
    }

    /// Newest first (by last activity).
    pub fn list(&self) -> Result<Vec<ConversationSummary>> {
        let (all, _unreadable) = self.records.list::<Conversation>()?;
        let mut out: Vec<ConversationSummary> = all.iter().map(|(_, c)| c.summary()).collect();
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    /// The conversation `id`; [`crate::Error::UnknownRecord`] when there is none.
    pub fn load(&self, id: &str) -> Result<Conversation> {
        self.records.load(id)
    }

    /// Writes `c` atomically, replacing its earlier version.
    pub fn save(&self, c: &Conversation) -> Result<()> {
        self.records.save(&c.id, c)
    }

    /// Deletes the conversation `id`; `false` when there was none.
    pub fn delete(&self, id: &str) -> Result<bool> {
        self.records.delete(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_survive_a_reopen_and_can_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Conversations::new(dir.path());
        let mut c = Conversation::new();
        c.push(Turn {
            question: "Where is the config parsed? I would like to know exactly which function does it and why".into(),
            sent: Some("Project excerpts…".into()),
            answer: "In src/config.rs:10-20.".into(),
            stop: StopReason::EndOfText,
            model: "m".into(),
            asked_at: c.created_at,
            context: PromptReport::default(),
            citations: vec![],
            usage: Usage {
                prompt_tokens: Some(1),
                completion_tokens: 1,
                time_to_first_token_ms: None,
                prompt_tokens_per_s: None,
                decode_tokens_per_s: None,
                total_ms: 1.0,
            },
        });
        store.save(&c).unwrap();
        let reopened = Conversations::new(dir.path());
        assert_eq!(reopened.load(&c.id).unwrap(), c);
        let list = reopened.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].title, "Where is the config parsed? I would like to know exactly…");
        assert!(reopened.delete(&c.id).unwrap());
        assert!(reopened.list().unwrap().is_empty());
    }
}
