//! Keeping a project's index fresh: file-system events, debounced into batches.
//!
//! Events within `DEBOUNCE` of each other form one batch, re-indexed with one commit, so a
//! save is searchable a moment later and a branch switch touching thousands of files is one
//! update, not thousands. Dropping the `Watcher` stops it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ignore::gitignore::Gitignore;
use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::classify::{is_binary_extension, is_lock_file, is_vendor_or_build_dir};
use super::{walk, IndexSummary, ProjectIndex};
use crate::error::{Error, Result};

/// Quiet time that closes a batch of events.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Whether a path is one the walker would consider, judged from the path alone (a deleted
/// file cannot be looked at): not hidden, not in a vendored or build folder, not ignored by
/// the project's top-level `.gitignore`, not a binary format or lock file. Build one per
/// batch of paths: it reads the `.gitignore` once.
pub struct PathFilter {
    root: PathBuf,
    gitignore: Gitignore,
}

impl PathFilter {
    /// A filter for the folder `root`, with its `.gitignore`.
    pub fn new(root: &Path) -> PathFilter {
        let (gitignore, _) = Gitignore::new(root.join(".gitignore"));
        PathFilter { root: root.to_path_buf(), gitignore }
    }

    /// Whether the file or folder at `abs` is one the index keeps.
    pub fn allows(&self, abs: &Path) -> bool {
        let Some(rel) = walk::relative(&self.root, abs) else { return false };
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.starts_with('.')) || parts[..parts.len() - 1].iter().any(|p| is_vendor_or_build_dir(p)) {
            return false;
        }
        if is_binary_extension(&rel) || is_lock_file(&rel) {
            return false;
        }
        !self.gitignore.matched_path_or_any_parents(abs, abs.is_dir()).is_ignore()
    }
}

/// Watches the project of `index` and re-indexes each batch of changes, then calls
/// `on_update` with the result and the project-relative paths of the batch.
pub fn watch(
    index: Arc<ProjectIndex>,
    mut on_update: impl FnMut(Result<IndexSummary>, &BTreeSet<String>) + Send + 'static,
) -> Result<Watcher> {
    let root = index.root().to_path_buf();
    let handler_root = root.clone();
    let handler = move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                let msg = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
                on_update(Err(Error::Index { path: handler_root.clone(), reason: format!("file watcher: {msg}") }), &BTreeSet::new());
                return;
            }
        };
        let filter = PathFilter::new(&handler_root);
        let paths: BTreeSet<String> = events
            .iter()
            .filter(|e| !e.kind.is_access())
            .flat_map(|e| e.paths.iter())
            .filter(|p| filter.allows(p))
            .filter_map(|p| walk::relative(&handler_root, p))
            .collect();
        if !paths.is_empty() {
            on_update(index.update_paths(&paths), &paths);
        }
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler)
        .map_err(|e| Error::Index { path: root.clone(), reason: format!("cannot watch the project: {e}") })?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| Error::Index { path: root.clone(), reason: format!("cannot watch the project: {e}") })?;
    Ok(Watcher { _debouncer: debouncer })
}
