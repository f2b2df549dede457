//! Walking a project: which files are candidates for the index, and why the others are not.
//!
//! Respects `.gitignore`, `.ignore` and hidden files (the `ignore` crate, as ripgrep does),
//! skips vendored and build folders, lock files, binary formats and files over the size
//! limit. Symlinks are not followed (so loops and links out of the project cannot happen)
//! and are counted. Unreadable folders are counted and skipped; nothing here is fatal.
//! Content checks (binary bytes, UTF-8, minified text) happen when a file is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::classify::{is_binary_extension, is_lock_file, is_vendor_or_build_dir};

/// Larger files are data, logs or generated code, not something to put in a prompt.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A file the walk found to index.
pub struct WalkedFile {
    /// Relative to the project root, `/`-separated.
    pub rel_path: String,
    /// Where it is on disk.
    pub abs_path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (what tells a changed file).
    pub mtime_ns: u64,
}

/// Why files were left out, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct SkipCounts(pub BTreeMap<String, usize>);

impl SkipCounts {
    /// Counts one more file left out for `reason`.
    pub fn add(&mut self, reason: &str) {
        *self.0.entry(reason.to_string()).or_default() += 1;
    }
    /// Files left out, for every reason.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &SkipCounts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
}

/// Every candidate file under `root`, sorted by path.
pub fn walk(root: &Path) -> (Vec<WalkedFile>, SkipCounts) {
    let mut skipped = SkipCounts::default();
    let vendor_dirs = Arc::new(AtomicUsize::new(0));
    let counter = vendor_dirs.clone();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let skip = e.depth() > 0 && is_dir && is_vendor_or_build_dir(&e.file_name().to_string_lossy());
            if skip {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            !skip
        })
        .build();

    let mut files = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skipped.add(if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
                    "vanished"
                } else {
                    "unreadable"
                });
                continue;
            }
        };
        let Some(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            skipped.add("symlink");
            continue;
        }
        if !ft.is_file() {
            skipped.add("special_file");
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else { continue };
        if is_binary_extension(&rel) {
            skipped.add("binary");
            continue;
        }
        if is_lock_file(&rel) {
            skipped.add("lock_file");
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(_) => {
                skipped.add("vanished");
                continue;
            }
        };
        if meta.len() > MAX_FILE_BYTES {
            skipped.add("too_large");
            continue;
        }
        files.push(WalkedFile { rel_path: rel, abs_path: entry.path().to_path_buf(), size: meta.len(), mtime_ns: mtime_ns(&meta) });
    }
    let vendor = vendor_dirs.load(Ordering::Relaxed);
    if vendor > 0 {
        skipped.0.insert("vendor_or_build_dir".into(), vendor);
    }
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    (files, skipped)
}

/// A file's modification time in nanoseconds since the epoch (0 when the OS has none).
pub fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `path` relative to `root` with `/` separators; `None` if it is not under `root`.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Why a file's bytes are not worth indexing, if they are not: binary, not UTF-8, or
/// minified/generated text (very long lines, or little that looks like words).
pub fn reject_content(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Some("binary");
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return Some("not_utf8") };
    if text.len() > 2000 {
        let lines = text.lines().count().max(1);
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        if text.len() / lines > 300 || longest > 10_000 {
            return Some("minified_or_generated");
        }
        let alnum = text.bytes().filter(|b| b.is_ascii_alphanumeric()).count();
        if alnum * 100 / text.len() < 25 {
            return Some("minified_or_generated");
        }
    }
    None
}
