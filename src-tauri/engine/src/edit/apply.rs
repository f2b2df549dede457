//! Applying a proposal to the project, and undoing it.
//!
//! Apply checks every chosen file against the hash the proposal was made from before writing
//! any (a file changed since is a conflict and nothing is written), saves what undo needs
//! (the exact previous bytes and mode), then writes each file atomically. If a write fails
//! part-way (a full disk), the files already written are put back. Undo restores the exact
//! previous bytes, and refuses if a file changed again since. A change the gate held
//! ([`super::gate`]) is written only when the caller passes the user's confirmation.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::diff::apply_selected;
use super::proposal::{ChangeKind, FileChange};
use super::target::checked_target;
use super::text::content_hash;
use crate::error::{Error, IoContext, Result};
use crate::paths::write_atomically_with;
use crate::records::{new_id, now, RecordDir};

/// Which parts of a proposal to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "items", rename_all = "snake_case")]
pub enum Selection {
    /// Every change of the proposal.
    All,
    /// These files, all their hunks.
    Files(Vec<String>),
    /// These hunks, by their number in the proposal.
    Hunks(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// One file an apply wrote, with what undo needs to restore it.
pub struct AppliedFile {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// Whether it was modified, created or deleted.
    pub kind: ChangeKind,
    /// Hunk numbers applied.
    pub hunks: Vec<usize>,
    /// SHA-256 before and after; `None` where the file did not exist.
    pub before_sha256: Option<String>,
    /// See `before_sha256`.
    pub after_sha256: Option<String>,
    /// Unix mode the file had, restored on undo.
    pub before_mode: Option<u32>,
    /// Folders the apply created for a new file, removed again on undo when empty.
    pub created_dirs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A proposal (or part of it) written to the project, as recorded in its history.
pub struct AppliedChange {
    /// Record id, what `undo` takes.
    pub id: String,
    /// The proposal it came from.
    pub proposal_id: String,
    /// The change request, as the user wrote it.
    pub instruction: String,
    /// Unix seconds.
    pub applied_at: u64,
    /// Every file written, in the order they were written.
    pub files: Vec<AppliedFile>,
    /// Unix seconds of the undo; `None` while the change stands.
    pub undone_at: Option<u64>,
}

/// A project's applied changes and the bytes needed to undo them.
pub struct History {
    records: RecordDir,
}

impl History {
    /// The history kept in `dir` (a project's data folder's `history/`).
    pub fn new(dir: std::path::PathBuf) -> History {
        History { records: RecordDir::new(dir, "change") }
    }

    /// Applied changes, newest first.
    pub fn list(&self) -> Result<Vec<AppliedChange>> {
        Ok(self.records.list::<AppliedChange>()?.0.into_iter().map(|(_, c)| c).collect())
    }

    /// The applied change `id`; [`crate::Error::UnknownRecord`] when there is none.
    pub fn get(&self, id: &str) -> Result<AppliedChange> {
        self.records.load(id)
    }

    fn blob(&self, id: &str, n: usize) -> std::path::PathBuf {
        self.records.dir().join(id).join(format!("{n}.before"))
    }
}

struct Planned<'a> {
    change: &'a FileChange,
    target: std::path::PathBuf,
    hunks: Vec<usize>,
    before: Option<(Vec<u8>, std::fs::Permissions)>,
    after: Option<Vec<u8>>,
}

/// Applies the chosen part of `files` (a proposal's changes) to the project at `root`.
/// A held change in the selection is refused, with nothing written, unless `confirm_held`
/// says the user confirmed it.
pub fn apply(
    root: &Path,
    history: &History,
    proposal_id: &str,
    instruction: &str,
    files: &[FileChange],
    selection: &Selection,
    confirm_held: bool,
) -> Result<AppliedChange> {
    apply_using(root, history, proposal_id, instruction, files, selection, confirm_held, &write_one)
}

/// [`apply`] with the file writer as a parameter, so tests can make a write fail part-way.
#[allow(clippy::too_many_arguments)]
fn apply_using(
    root: &Path,
    history: &History,
    proposal_id: &str,
    instruction: &str,
    files: &[FileChange],
    selection: &Selection,
    confirm_held: bool,
    write: &dyn Fn(&Planned) -> Result<()>,
) -> Result<AppliedChange> {
    let plan = plan(root, files, selection, confirm_held)?;
    let id = new_id();
    let mut record = AppliedChange {
        id: id.clone(),
        proposal_id: proposal_id.to_string(),
        instruction: instruction.to_string(),
        applied_at: now(),
        files: Vec::new(),
        undone_at: None,
    };
    // Undo data first: if the app dies mid-apply, undo can still put back what was written.
    for (n, p) in plan.iter().enumerate() {
        if let Some((bytes, _)) = &p.before {
            let blob = history.blob(&id, n);
            std::fs::create_dir_all(blob.parent().expect("blob has a folder")).at(&blob)?;
            write_atomically_with(&blob, bytes, None)?;
        }
        record.files.push(AppliedFile {
            path: p.change.path.clone(),
            kind: p.change.kind,
            hunks: p.hunks.clone(),
            before_sha256: p.before.as_ref().map(|(b, _)| content_hash(b)),
            after_sha256: p.after.as_deref().map(content_hash),
            before_mode: p.before.as_ref().map(|(_, perm)| mode(perm)),
            created_dirs: missing_dirs(root, &p.change.path),
        });
    }
    history.records.save(&id, &record)?;

    for (n, p) in plan.iter().enumerate() {
        if let Err(e) = write(p) {
            // Put back what was already written, newest first; the record goes with it.
            for q in plan[..n].iter().rev() {
                let _ = restore(&q.target, q.before.as_ref().map(|(b, perm)| (b.as_slice(), perm.clone())));
            }
            let _ = history.records.delete(&id);
            let _ = std::fs::remove_dir_all(history.records.dir().join(&id));
            return Err(e);
        }
    }
    Ok(record)
}

/// The files to write, each checked against the disk; a conflict or an unconfirmed held
/// change anywhere stops everything.
fn plan<'a>(root: &Path, files: &'a [FileChange], selection: &Selection, confirm_held: bool) -> Result<Vec<Planned<'a>>> {
    let wanted_files: Option<BTreeSet<&str>> = match selection {
        Selection::Files(f) => Some(f.iter().map(|s| s.trim_start_matches("./")).collect()),
        _ => None,
    };
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    let (mut held, mut reasons) = (Vec::new(), Vec::new());
    for change in files {
        let hunks: Vec<usize> = change
            .hunks
            .iter()
            .map(|h| h.number)
            .filter(|n| match selection {
                Selection::All => true,
                Selection::Files(_) => wanted_files.as_ref().is_some_and(|w| w.contains(change.path.as_str())),
                Selection::Hunks(h) => h.contains(n),
            })
            .collect();
        if hunks.is_empty() {
            continue;
        }
        if let Some(hold) = change.hold.as_ref().filter(|_| !confirm_held) {
            held.push(change.path.clone());
            reasons.push(hold.reason.clone());
            continue;
        }
        let target = checked_target(root, &change.path)?;
        let current = match std::fs::read(&target) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&target, e)),
        };
        let unchanged = match (&current, &change.base_sha256) {
            (None, None) => true,
            (Some(b), Some(h)) => content_hash(b) == *h,
            _ => false,
        };
        if !unchanged {
            conflicts.push(change.path.clone());
            continue;
        }
        let before = match current {
            Some(b) => Some((b, std::fs::metadata(&target).at(&target)?.permissions())),
            None => None,
        };
        let after = match change.kind {
            ChangeKind::Delete => None,
            ChangeKind::Create => Some(change.style.encode(&change.new_text)),
            ChangeKind::Modify => {
                let first = change.hunks.first().map_or(0, |h| h.number);
                let text = apply_selected(&change.old_text, &change.new_text, &|i| hunks.contains(&(first + i)));
                Some(change.style.encode(&text))
            }
        };
        plan.push(Planned { change, target, hunks, before, after });
    }
    if !held.is_empty() {
        return Err(Error::HeldChange { paths: held, reasons });
    }
    if !conflicts.is_empty() {
        return Err(Error::EditConflict { paths: conflicts });
    }
    if plan.is_empty() {
        return Err(Error::EmptySelection(format!("{selection:?}")));
    }
    Ok(plan)
}

fn write_one(p: &Planned) -> Result<()> {
    match &p.after {
        Some(bytes) => {
            if let Some(dir) = p.target.parent() {
                std::fs::create_dir_all(dir).at(dir)?;
            }
            write_atomically_with(&p.target, bytes, p.before.as_ref().map(|(_, perm)| perm.clone()))
        }
        None => std::fs::remove_file(&p.target).at(&p.target),
    }
}

/// Puts `before` back at `target` (or removes the file when it did not exist).
fn restore(target: &Path, before: Option<(&[u8], std::fs::Permissions)>) -> Result<()> {
    match before {
        Some((bytes, perm)) => {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).at(dir)?;
            }
            write_atomically_with(target, bytes, Some(perm))
        }
        None => match std::fs::remove_file(target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(target, e)),
            _ => Ok(()),
        },
    }
}

/// Undoes change `id`, or the latest change not yet undone.
pub fn undo(root: &Path, history: &History, id: Option<&str>) -> Result<AppliedChange> {
    let mut record = match id {
        Some(id) => history.get(id)?,
        None => history.list()?.into_iter().find(|c| c.undone_at.is_none()).ok_or(Error::NothingToUndo)?,
    };
    if record.undone_at.is_some() {
        return Err(Error::AlreadyUndone { id: record.id });
    }
    // Every file must be as the change left it (or already as before it, after a crash).
    let mut to_restore = Vec::new();
    let mut conflicts = Vec::new();
    for (n, f) in record.files.iter().enumerate() {
        let target = checked_target(root, &f.path)?;
        let current = match std::fs::read(&target) {
            Ok(b) => Some(content_hash(&b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&target, e)),
        };
        if current == f.after_sha256 {
            to_restore.push((n, f, target));
        } else if current != f.before_sha256 {
            conflicts.push(f.path.clone());
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::UndoConflict { id: record.id, paths: conflicts });
    }
    for (n, f, target) in to_restore {
        let before = match &f.before_sha256 {
            Some(_) => {
                let blob = history.blob(&record.id, n);
                let bytes = std::fs::read(&blob).at(&blob)?;
                Some((bytes, permissions(f.before_mode)))
            }
            None => None,
        };
        restore(&target, before.as_ref().map(|(b, p)| (b.as_slice(), p.clone())))?;
        if before.is_none() {
            for dir in f.created_dirs.iter().rev() {
                let _ = std::fs::remove_dir(root.join(dir));
            }
        }
    }
    record.undone_at = Some(now());
    history.records.save(&record.id, &record)?;
    Ok(record)
}

/// Folders on the way to `rel` that do not exist yet, outermost first.
fn missing_dirs(root: &Path, rel: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut p = Path::new(rel).parent();
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        if !root.join(d).exists() {
            dirs.push(d.to_string_lossy().replace('\\', "/"));
        }
        p = d.parent();
    }
    dirs.reverse();
    dirs
}

#[cfg(unix)]
fn mode(p: &std::fs::Permissions) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(p)
}
#[cfg(not(unix))]
fn mode(p: &std::fs::Permissions) -> u32 {
    if p.readonly() { 0o444 } else { 0o644 }
}

#[cfg(unix)]
fn permissions(mode: Option<u32>) -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(mode.unwrap_or(0o644))
}
#[cfg(not(unix))]
fn permissions(mode: Option<u32>) -> std::fs::Permissions {
    let mut p = std::fs::metadata(".").map(|m| m.permissions()).expect("cwd");
    p.set_readonly(mode.is_some_and(|m| m & 0o200 == 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::parse::parse;
    use crate::edit::proposal::build;

    #[test]
    fn a_failed_write_puts_back_the_files_already_written() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("p");
        std::fs::create_dir(&root).unwrap();
        for f in ["a.txt", "b.txt", "c.txt"] {
            std::fs::write(root.join(f), format!("{f} before\n")).unwrap();
        }
        let known: Vec<String> = ["a.txt", "b.txt", "c.txt"].map(String::from).to_vec();
        let answer = "a.txt\n```\na after\n```\nb.txt\n```\nb after\n```\nnew/c.txt\n```\nc\n```\n";
        let changes = build(&root, &parse(answer, true), &Default::default(), &known);
        assert_eq!(changes.files.len(), 3);
        let history = History::new(tmp.path().join("history"));
        // The third write fails, as on a full disk.
        let failing = |p: &Planned| {
            if p.change.path == "new/c.txt" {
                return Err(Error::io(&p.target, std::io::Error::from_raw_os_error(28)));
            }
            write_one(p)
        };
        let e = apply_using(&root, &history, "p1", "x", &changes.files, &Selection::All, false, &failing).unwrap_err();
        assert!(e.to_string().contains("No space left"), "{e}");
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a.txt before\n");
        assert_eq!(std::fs::read_to_string(root.join("b.txt")).unwrap(), "b.txt before\n");
        assert!(history.list().unwrap().is_empty(), "no record of a change that did not happen");
        // With a writer that works, the same proposal applies.
        apply(&root, &history, "p1", "x", &changes.files, &Selection::All, false).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("new/c.txt")).unwrap(), "c\n");
    }
}
