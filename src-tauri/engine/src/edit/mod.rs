//! Code changes as reviewable proposals: the model's answer is parsed ([`parse`]), each edit
//! matched to a project file ([`target`], [`locate`]) and turned into per-file hunks
//! ([`proposal`], [`diff`]); [`gate`] holds the changes the instruction did not ask for
//! (a deleted file, an emptied one, a blind edit…) until the user confirms them; [`apply()`]
//! writes the chosen hunks atomically and keeps what undo needs. [`text`] keeps line breaks
//! and final newlines as the file had them; [`go_imports`] makes a changed Go file's
//! standard-library imports match its code, as Go editors do on save.

pub mod apply;
pub mod diff;
pub mod format;
pub mod gate;
pub mod go_imports;
pub mod locate;
pub mod parse;
pub mod proposal;
pub mod target;
pub mod text;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::{apply, undo, AppliedChange, History, Selection};
pub use format::EditFormat;
pub use gate::{Hold, HoldKind};
pub use proposal::{BlockProblem, ChangeKind, FileChange, Snapshot};

use crate::context::PromptReport;
use crate::error::Result;
use crate::inference::{StopReason, Usage};
use crate::records::RecordDir;

/// One "change X" request and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Proposal {
    /// Record id (also its file name in the project's `proposals/`).
    pub id: String,
    /// The change request, as the user wrote it.
    pub instruction: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model that answered.
    pub model: String,
    /// The format the model was asked for.
    pub format: EditFormat,
    /// What went into the prompt.
    pub context: PromptReport,
    /// The model's answer, as it wrote it.
    pub answer: String,
    /// Why the answer ended.
    pub stop: StopReason,
    /// Tokens and timings of the answer.
    pub usage: Usage,
    /// The changes, one per file, each with its hunks and diff.
    pub files: Vec<FileChange>,
    /// Edit blocks that could not be used, and why.
    pub problems: Vec<BlockProblem>,
    /// Files the answer gave back exactly as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<String>,
}

impl Proposal {
    /// The changes that wait for the user's confirmation.
    pub fn held(&self) -> impl Iterator<Item = &FileChange> {
        self.files.iter().filter(|f| f.hold.is_some())
    }

    /// The paths of the held changes an apply leaves out: all of them, unless `confirm`.
    pub fn unconfirmed(&self, confirm: bool) -> Vec<String> {
        match confirm {
            true => Vec::new(),
            false => self.held().map(|f| f.path.clone()).collect(),
        }
    }

    /// `selection` without the held changes: what may be applied without confirmation.
    pub fn unheld(&self, selection: &Selection) -> Selection {
        if self.held().next().is_none() {
            return selection.clone();
        }
        let hunks: Vec<usize> = self
            .files
            .iter()
            .filter(|f| f.hold.is_none())
            .flat_map(|f| f.hunks.iter().map(|h| h.number))
            .filter(|n| match selection {
                Selection::All => true,
                Selection::Hunks(h) => h.contains(n),
                Selection::Files(_) => false,
            })
            .collect();
        match selection {
            Selection::Files(files) => Selection::Files(
                files.iter().filter(|p| !self.held().any(|f| f.path == p.trim_start_matches("./"))).cloned().collect(),
            ),
            _ => Selection::Hunks(hunks),
        }
    }

    /// Why the proposal has nothing to apply, for the user; `None` when it has changes.
    pub fn empty_reason(&self) -> Option<String> {
        if !self.files.is_empty() {
            return None;
        }
        Some(if self.problems.is_empty() && !self.unchanged.is_empty() {
            format!("the model's answer contained no usable edit (it gave {} back unchanged)", self.unchanged.join(", "))
        } else if self.problems.is_empty() {
            "the model's answer contained no usable edit (no file block in the expected format)".to_string()
        } else {
            format!("the model's answer contained no usable edit ({} block(s) could not be used)", self.problems.len())
        })
    }
}

/// A model's answer to an edit request, with how it came about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditAnswer {
    /// The model that answered.
    pub model: String,
    /// The answer as the model wrote it.
    pub text: String,
    /// Why the answer ended.
    pub stop: StopReason,
    /// Tokens and timings of the answer.
    pub usage: Usage,
    /// What went into the prompt.
    pub context: PromptReport,
}

/// Turns a model's answer into a proposal for the project at `root` (`known`: its files).
/// `seen` holds the files as the model was shown them; files it was not shown are read now.
/// `prompt_known`: whether `seen` is all the prompt showed (false for an answer from
/// elsewhere), so that an edit of a file outside it is a blind edit the gate holds.
pub fn propose(
    root: &std::path::Path,
    known: &[String],
    instruction: &str,
    format: EditFormat,
    answer: EditAnswer,
    seen: &std::collections::HashMap<String, Snapshot>,
    prompt_known: bool,
) -> Proposal {
    let parsed = parse::parse(&answer.text, format == EditFormat::WholeFile);
    let mut changes = proposal::build(root, &parsed, seen, known);
    let shown: std::collections::HashSet<String> = seen.keys().cloned().collect();
    gate::classify(&mut changes.files, instruction, prompt_known.then_some(&shown));
    Proposal {
        id: crate::records::new_id(),
        instruction: instruction.to_string(),
        created_at: crate::records::now(),
        model: answer.model,
        format,
        context: answer.context,
        answer: answer.text,
        stop: answer.stop,
        usage: answer.usage,
        files: changes.files,
        problems: changes.problems,
        unchanged: changes.unchanged,
    }
}

/// What an apply wrote, and the held changes it left out because they were not confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Applied {
    /// `None` when everything chosen was held.
    pub change: Option<AppliedChange>,
    /// Held changes left out because they were not confirmed (project-relative paths).
    pub held: Vec<String>,
}

/// Applies `selection` of `proposal` to the project at `root` atomically, recording it in
/// `history`. Changes held for confirmation are left out, and listed, unless `confirm`; a
/// file changed since the proposal was made is a conflict and nothing is written.
pub fn apply_proposal(
    root: &std::path::Path,
    history: &History,
    proposal: &Proposal,
    selection: &Selection,
    confirm: bool,
) -> Result<Applied> {
    let held = proposal.unconfirmed(confirm);
    let selection = if confirm { selection.clone() } else { proposal.unheld(selection) };
    let nothing_left = match &selection {
        Selection::Hunks(h) => h.is_empty(),
        Selection::Files(f) => f.is_empty(),
        Selection::All => false,
    };
    if nothing_left && !held.is_empty() {
        return Ok(Applied { change: None, held });
    }
    let change = apply(root, history, &proposal.id, &proposal.instruction, &proposal.files, &selection, confirm)?;
    Ok(Applied { change: Some(change), held })
}

/// A project's proposals, kept so the app can apply one later and history can name it.
pub struct Proposals {
    records: RecordDir,
}

impl Proposals {
    /// The proposals in a project's data folder.
    pub fn new(project_data: &std::path::Path) -> Proposals {
        Proposals { records: RecordDir::new(project_data.join("proposals"), "proposal") }
    }

    /// Writes `p` atomically, replacing its earlier version.
    pub fn save(&self, p: &Proposal) -> Result<()> {
        self.records.save(&p.id, p)
    }

    /// The proposal `id`; [`crate::Error::UnknownRecord`] when there is none.
    pub fn load(&self, id: &str) -> Result<Proposal> {
        self.records.load(id)
    }

    /// Newest first.
    pub fn list(&self) -> Result<Vec<Proposal>> {
        Ok(self.records.list::<Proposal>()?.0.into_iter().map(|(_, p)| p).collect())
    }

    /// The newest proposal, if any.
    pub fn latest(&self) -> Result<Option<Proposal>> {
        Ok(self.list()?.into_iter().next())
    }
}

/// The applied-change history in a project's data folder.
pub fn history(project_data: &std::path::Path) -> History {
    History::new(PathBuf::from(project_data).join("history"))
}
