//! From parsed edit blocks to a proposal: per file, the new text and its hunks, against the
//! content the model saw (its hash recorded), plus every block that could not be used and why.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::diff::{self, Hunk};
use super::gate::Hold;
use super::locate::{locate, ClosestLines};
use super::parse::{EditAction, EditBlock, ParsedAnswer};
use super::target::{checked_target, resolve, Resolved};
use super::text::{content_hash, FileText, LineStyle};
use crate::error::{Error, Result};

/// A file's content as the model was shown it (or as it was when the edit touched it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// The content, decoded.
    pub file: FileText,
}

impl Snapshot {
    /// Reads `rel` under `root`: `None` when it does not exist.
    pub fn read(root: &Path, rel: &str) -> Result<Option<Snapshot>> {
        let full = root.join(rel);
        match std::fs::read(&full) {
            Ok(bytes) => Ok(Some(Snapshot { sha256: content_hash(&bytes), file: FileText::decode(rel, &bytes)? })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(full, e)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
/// What a change does to its file.
pub enum ChangeKind {
    /// Changes an existing file.
    Modify,
    /// Creates a file.
    Create,
    /// Deletes a file.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A proposed change to one file.
pub struct FileChange {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// Modify, create or delete.
    pub kind: ChangeKind,
    /// SHA-256 of the bytes the proposal was made against; `None` for a new file.
    pub base_sha256: Option<String>,
    /// How the file writes its line breaks, kept on apply.
    pub style: LineStyle,
    /// Old and new text with `\n` breaks (empty for a new or deleted file's missing side).
    pub old_text: String,
    /// See `old_text`.
    pub new_text: String,
    /// The change as hunks, numbered across the whole proposal.
    pub hunks: Vec<Hunk>,
    /// The unified diff, as `git diff` would show it.
    pub diff: String,
    /// Set when the change waits for the user's explicit confirmation (see [`super::gate`]).
    #[serde(default)]
    pub hold: Option<Hold>,
    /// What Perimeter changed beyond the model's answer, for the user (Go imports made to
    /// match the code, [`super::go_imports`]); the diff includes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// An edit block that produced no change, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct BlockProblem {
    /// 1-based block number in the model's answer.
    pub block: usize,
    /// The file the block names, when it names one.
    pub path: Option<String>,
    /// Why the block produced no change, in words.
    pub reason: String,
    /// For a search that matched nowhere: the lines of the file most like it.
    pub closest: Option<ClosestLines>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// An answer's edit blocks, turned into changes to the project's files.
pub struct Changes {
    /// One change per file, in the order the answer first named them.
    pub files: Vec<FileChange>,
    /// Edit blocks that produced no change, and why.
    pub problems: Vec<BlockProblem>,
    /// Files the answer gave back exactly as they are (small models often do).
    pub unchanged: Vec<String>,
}

/// A file whose content a whole-file block shrinks below this share is taken for a fragment.
const FRAGMENT_SHARE: f64 = 0.5;
/// …when the file has at least this many lines.
const FRAGMENT_MIN_LINES: usize = 20;

struct Working {
    path: String,
    base: Option<Snapshot>,
    /// `None`: deleted.
    text: Option<String>,
    /// See [`FileChange::notes`].
    notes: Vec<String>,
}

impl Working {
    /// Whether the answer changed this Go file.
    fn is_changed_go(&self) -> bool {
        self.path.ends_with(".go") && self.text.is_some() && self.text.as_deref() != self.base.as_ref().map(|b| b.file.text.as_str())
    }
}

/// Each Go file the answer changed gets the standard-library imports its code uses and loses
/// those it does not: Go builds neither way, and models often get them wrong. The other Go
/// files of its folder (its package) as the answer leaves them, the ones it creates included,
/// say which names are declared.
fn tidy_go_imports(root: &Path, known: &[String], work: &mut [Working]) {
    fn folder(path: &str) -> &str {
        path.rsplit_once('/').map_or("", |(d, _)| d)
    }
    // The Go files on disk that the answer leaves alone, read once per folder.
    let mut untouched: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..work.len() {
        if !work[i].is_changed_go() {
            continue;
        }
        let here = folder(&work[i].path).to_string();
        let on_disk = untouched.entry(here.clone()).or_insert_with(|| {
            known
                .iter()
                .filter(|p| p.ends_with(".go") && folder(p) == here && !work.iter().any(|w| &w.path == *p))
                .filter_map(|p| std::fs::read_to_string(root.join(p)).ok())
                .collect()
        });
        let mut siblings: Vec<&str> = on_disk.iter().map(String::as_str).collect();
        siblings.extend(
            work.iter()
                .enumerate()
                .filter(|(j, w)| *j != i && w.path.ends_with(".go") && folder(&w.path) == here)
                .filter_map(|(_, w)| w.text.as_deref()),
        );
        if let Some(tidied) = super::go_imports::tidy(work[i].text.as_deref().unwrap_or_default(), &siblings) {
            work[i].notes.push(tidied.describe());
            work[i].text = Some(tidied.text);
        }
    }
}

/// Turns `parsed` into per-file changes. `seen` holds what the model was shown, by path;
/// other files are read from disk now. `known` lists the project's files, for path matching.
pub fn build(root: &Path, parsed: &ParsedAnswer, seen: &HashMap<String, Snapshot>, known: &[String]) -> Changes {
    let mut problems: Vec<BlockProblem> = parsed
        .problems
        .iter()
        .map(|p| BlockProblem { block: p.block, path: None, reason: p.reason.clone(), closest: None })
        .collect();
    let mut work: Vec<Working> = Vec::new();
    for block in &parsed.blocks {
        if let Err(p) = apply_block(root, block, seen, known, &mut work) {
            problems.push(p);
        }
    }
    problems.sort_by_key(|p| p.block);

    let mut files = Vec::new();
    let mut unchanged = Vec::new();
    let mut next_hunk = 1;
    tidy_go_imports(root, known, &mut work);
    for w in work {
        let (kind, old, new) = match (&w.base, &w.text) {
            (None, Some(t)) => (ChangeKind::Create, String::new(), t.clone()),
            (Some(b), None) => (ChangeKind::Delete, b.file.text.clone(), String::new()),
            (Some(b), Some(t)) if b.file.style.conform(t) != b.file.text => {
                (ChangeKind::Modify, b.file.text.clone(), b.file.style.conform(t))
            }
            (Some(_), Some(_)) => {
                unchanged.push(w.path);
                continue;
            }
            (None, None) => continue,
        };
        let hunks = diff::hunks(&old, &new, next_hunk);
        next_hunk += hunks.len();
        let diff = diff::unified(
            (kind != ChangeKind::Create).then_some(w.path.as_str()),
            (kind != ChangeKind::Delete).then_some(w.path.as_str()),
            &hunks,
        );
        files.push(FileChange {
            style: w.base.as_ref().map(|b| b.file.style).unwrap_or_default(),
            base_sha256: w.base.map(|b| b.sha256),
            path: w.path,
            kind,
            old_text: old,
            new_text: new,
            hunks,
            diff,
            hold: None,
            notes: w.notes,
        });
    }
    Changes { files, problems, unchanged }
}

fn apply_block(
    root: &Path,
    block: &EditBlock,
    seen: &HashMap<String, Snapshot>,
    known: &[String],
    work: &mut Vec<Working>,
) -> Result<(), BlockProblem> {
    let problem = |path: Option<&str>, reason: String| BlockProblem {
        block: block.number,
        path: path.map(str::to_string).or_else(|| Some(block.path.clone())),
        reason,
        closest: None,
    };
    let path = match resolve(&block.path, root, known) {
        Ok(Resolved::Existing(p) | Resolved::New(p)) => p,
        Err(e) => return Err(problem(None, e.to_string())),
    };
    checked_target(root, &path).map_err(|e| problem(Some(&path), e.to_string()))?;
    let at = match work.iter().position(|w| w.path == path) {
        Some(i) => i,
        None => {
            let base = match seen.get(&path) {
                Some(s) => Some(s.clone()),
                None => Snapshot::read(root, &path).map_err(|e| problem(Some(&path), e.to_string()))?,
            };
            let text = base.as_ref().map(|b| b.file.text.clone());
            work.push(Working { path: path.clone(), base, text, notes: Vec::new() });
            work.len() - 1
        }
    };
    let w = &mut work[at];
    match &block.action {
        EditAction::Delete => {
            if w.text.is_none() {
                return Err(problem(Some(&path), format!("cannot delete {path}: there is no such file")));
            }
            // Small models end a good rewrite with a stray DELETE of the same file (the
            // format's own example): the answer contradicts itself, and the rewrite is its point.
            if w.text.as_deref() != w.base.as_ref().map(|b| b.file.text.as_str()) {
                return Err(problem(Some(&path), format!("the answer rewrote {path} and then deleted it: the rewrite is kept")));
            }
            w.text = None;
        }
        EditAction::WholeFile { content } => {
            if let Some(old) = w.text.as_deref() {
                let (old_n, new_n) = (old.lines().count(), content.lines().count());
                if old_n >= FRAGMENT_MIN_LINES && (new_n as f64) < old_n as f64 * FRAGMENT_SHARE {
                    return Err(problem(
                        Some(&path),
                        format!(
                            "the block has {new_n} lines where {path} has {old_n}: it looks like a fragment, not the \
                             whole file, so it was not used (it would delete the rest)"
                        ),
                    ));
                }
            }
            w.text = Some(content.clone());
        }
        EditAction::SearchReplace { search, replace } => {
            let Some(current) = w.text.clone() else {
                if search.trim().is_empty() {
                    w.text = Some(replace.clone());
                    return Ok(());
                }
                return Err(problem(Some(&path), format!("{path} does not exist, so the block's SEARCH text cannot be found in it")));
            };
            if search.trim().is_empty() {
                if current.trim().is_empty() {
                    w.text = Some(replace.clone());
                    return Ok(());
                }
                return Err(problem(Some(&path), format!("the block's SEARCH section is empty but {path} already has content")));
            }
            let file: Vec<&str> = current.lines().collect();
            let search: Vec<&str> = search.lines().collect();
            let replace: Vec<&str> = replace.lines().collect();
            match locate(&file, &search, &replace) {
                Ok(found) => {
                    let mut lines: Vec<String> = file[..found.start].iter().map(|s| s.to_string()).collect();
                    lines.extend(found.replacement);
                    lines.extend(file[found.end..].iter().map(|s| s.to_string()));
                    let mut text = lines.join("\n");
                    if current.ends_with('\n') && !text.is_empty() {
                        text.push('\n');
                    }
                    w.text = Some(text);
                }
                Err(closest) => {
                    let mut p = problem(
                        Some(&path),
                        format!(
                            "the block's SEARCH text ({} line{}) is not in {path}",
                            search.len(),
                            if search.len() == 1 { "" } else { "s" }
                        ),
                    );
                    p.closest = closest;
                    return Err(p);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::parse::parse;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, c).unwrap();
        }
        (dir, files.iter().map(|(p, _)| p.to_string()).collect())
    }

    #[test]
    fn several_blocks_on_one_file_and_a_new_file() {
        let (dir, known) = project(&[("src/a.py", "def f():\n    return 1\n\ndef g():\n    return 2\n")]);
        let answer = "a.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 10\n>>>>>>> REPLACE\n\nsrc/a.py\n<<<<<<< SEARCH\ndef g():\n    return 2\n=======\ndef g():\n    return 20\n>>>>>>> REPLACE\n\nsrc/b.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n";
        let c = build(dir.path(), &parse(answer, false), &HashMap::new(), &known);
        assert_eq!(c.problems, vec![]);
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.files[0].new_text, "def f():\n    return 10\n\ndef g():\n    return 20\n");
        assert_eq!(c.files[0].kind, ChangeKind::Modify);
        assert_eq!(c.files[1].kind, ChangeKind::Create);
        assert_eq!(c.files[1].hunks[0].number, c.files[0].hunks.last().unwrap().number + 1);
    }

    #[test]
    fn a_delete_after_a_rewrite_of_the_same_file_keeps_the_rewrite() {
        let (dir, known) = project(&[("calc.js", "function add(a, b) {\n  return a - b;\n}\n")]);
        // Qwen2.5-Coder 0.5B's answer to "the add function is wrong", as it wrote it.
        let answer = "calc.js\n```js\nfunction add(a, b) {\n  return a + b;\n}\n```\n\nDELETE calc.js\n";
        let c = build(dir.path(), &parse(answer, true), &HashMap::new(), &known);
        assert_eq!(c.files.len(), 1);
        assert_eq!((c.files[0].kind, c.files[0].new_text.as_str()), (ChangeKind::Modify, "function add(a, b) {\n  return a + b;\n}\n"));
        assert!(c.problems[0].reason.contains("rewrote calc.js and then deleted it"), "{:?}", c.problems);
        // A delete on its own is still a delete.
        let c = build(dir.path(), &parse("DELETE calc.js\n", true), &HashMap::new(), &known);
        assert_eq!(c.files[0].kind, ChangeKind::Delete);
    }

    #[test]
    fn unmatched_search_names_the_block_and_the_closest_lines() {
        let (dir, known) = project(&[("a.py", "def f():\n    return 1\n")]);
        let answer = "a.py\n<<<<<<< SEARCH\ndef f():\n    return 2\n=======\ndef f():\n    return 3\n>>>>>>> REPLACE\n";
        let c = build(dir.path(), &parse(answer, false), &HashMap::new(), &known);
        assert!(c.files.is_empty());
        let p = &c.problems[0];
        assert_eq!((p.block, p.path.as_deref()), (1, Some("a.py")));
        assert!(p.reason.contains("not in a.py"), "{}", p.reason);
        assert_eq!(p.closest.as_ref().unwrap().start_line, 1);
    }

    #[test]
    fn whole_file_fragment_is_refused() {
        let long: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let (dir, known) = project(&[("notes.txt", &long)]);
        let c = build(dir.path(), &parse("notes.txt\n```\nline 0\nline 1 changed\n```\n", true), &HashMap::new(), &known);
        assert!(c.files.is_empty());
        assert!(c.problems[0].reason.contains("fragment"));
    }

    #[test]
    fn the_diff_is_against_what_the_model_saw_and_keeps_crlf_and_no_final_newline() {
        let (dir, known) = project(&[("w.txt", "one\r\ntwo\r\nthree")]);
        let seen_bytes = b"one\r\ntwo\r\nthree";
        let snap = Snapshot { sha256: content_hash(seen_bytes), file: FileText::decode("w.txt", seen_bytes).unwrap() };
        let seen = HashMap::from([("w.txt".to_string(), snap.clone())]);
        let c = build(dir.path(), &parse("w.txt\n```\none\n2\nthree\n```\n", true), &seen, &known);
        let f = &c.files[0];
        assert_eq!(f.base_sha256.as_deref(), Some(snap.sha256.as_str()));
        assert_eq!(f.new_text, "one\n2\nthree");
        assert!(f.style.crlf && !f.style.final_newline);
        assert_eq!(f.hunks.len(), 1);
        assert_eq!(f.hunks[0].lines.iter().filter(|l| l.kind != diff::LineKind::Context).count(), 2);
    }

    #[test]
    fn unchanged_file_is_not_a_change_and_non_utf8_is_a_problem() {
        let (dir, known) = project(&[("same.txt", "x\n")]);
        std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9\n").unwrap();
        let c = build(dir.path(), &parse("same.txt\n```\nx\n```\n\nlatin1.txt\n```\ncafe\n```\n", true), &HashMap::new(), &known);
        assert!(c.files.is_empty());
        assert_eq!(c.unchanged, ["same.txt"]);
        assert!(c.problems[0].reason.contains("not UTF-8"), "{:?}", c.problems);
    }

    #[test]
    fn a_changed_go_file_gets_the_imports_its_code_uses_and_says_so() {
        let stub = "package bottlesong\n\nfunc Recite(start, take int) []string {\n\tpanic(\"Please implement\")\n}\n";
        let (dir, known) = project(&[("bottle_song.go", stub), ("other.go", "package bottlesong\n\nimport \"fmt\"\n")]);
        // Qwen2.5-Coder 1.5B's first try at go/bottle-song, cut short: fmt used, not imported.
        let answer = "bottle_song.go\n```go\npackage bottlesong\n\nfunc Recite(start, take int) []string {\n\treturn []string{fmt.Sprintf(\"%d green bottles\", start)}\n}\n```\n";
        let c = build(dir.path(), &parse(answer, true), &HashMap::new(), &known);
        assert_eq!(c.files.len(), 1);
        assert!(c.files[0].new_text.starts_with("package bottlesong\n\nimport \"fmt\"\n\nfunc Recite"), "{}", c.files[0].new_text);
        assert!(c.files[0].diff.contains("+import \"fmt\""), "{}", c.files[0].diff);
        assert_eq!(c.files[0].notes.len(), 1);
        assert!(c.files[0].notes[0].contains("added the import of \"fmt\""), "{:?}", c.files[0].notes);
        // A Go file given back as it is stays unchanged, unused import and all.
        let c = build(dir.path(), &parse("other.go\n```go\npackage bottlesong\n\nimport \"fmt\"\n```\n", true), &HashMap::new(), &known);
        assert!(c.files.is_empty());
        assert_eq!(c.unchanged, ["other.go"]);
    }

    #[test]
    fn a_go_file_the_answer_creates_counts_as_part_of_the_package() {
        let (dir, known) = project(&[("queue.go", "package queue\n\nfunc Push(v int) {\n\tpanic(\"Please implement\")\n}\n")]);
        // `list` is declared by the new file, so `list.PushBack` needs no import of container/list.
        let answer = "queue.go\n```go\npackage queue\n\nfunc Push(v int) {\n\tlist.PushBack(v)\n}\n```\n\nstore.go\n```go\npackage queue\n\nvar list = newList()\n```\n";
        let c = build(dir.path(), &parse(answer, true), &HashMap::new(), &known);
        assert_eq!(c.files.len(), 2, "{:?}", c.problems);
        assert!(!c.files[0].new_text.contains("import"), "{}", c.files[0].new_text);
        assert!(c.files[0].notes.is_empty(), "{:?}", c.files[0].notes);
    }
}
