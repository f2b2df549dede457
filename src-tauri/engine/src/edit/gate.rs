//! The model's answer is untrusted input: changes the user did not ask for are held.
//!
//! A small model told "fix square_root.py" may answer `DELETE square_root.py`. Every file
//! change of a proposal is classified here; a destructive or unexpected one gets a [`Hold`]
//! with the reason in words and the closest safe action, and `apply` refuses to write it
//! without the user's explicit confirmation (`--confirm`, or the confirm button in the app).
//!
//! What is held, unless the instruction asks for it:
//! - deleting a file (asked: a delete verb *and* the file named, e.g. "remove old_utils.py");
//! - emptying a file, or shrinking it to under 40% of its lines (asked: "remove", "delete",
//!   "shorten", "simplify", … in the instruction);
//! - creating a file the instruction does not name (asked: the path or file name, or "new
//!   file" / "create");
//! - changing a file the prompt never showed the model (asked: the file named);
//! - changing a test file when the instruction says the tests are correct or not to touch
//!   them (never "asked" then: the instruction said the opposite).
//!
//! Intent is read from the instruction's words only. That errs on the side of holding: a
//! held change costs the user a click, a wrong apply can cost their work.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::proposal::{ChangeKind, FileChange};

/// Why a change waits for the user's explicit confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Hold {
    /// What kind of change it is.
    pub kind: HoldKind,
    /// The reason, in words.
    pub reason: String,
    /// What the user can do instead.
    pub safe_action: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
/// The kinds of change that wait for the user's confirmation.
pub enum HoldKind {
    /// Deletes a file the request did not ask to remove.
    DeletesFile,
    /// Leaves a file empty.
    EmptiesFile,
    /// Keeps under 40% of a file's lines (a model that dropped code it did not repeat).
    ShrinksFile,
    /// Creates a file the request does not name.
    CreatesUnnamedFile,
    /// Changes a file the model was not shown (a blind edit).
    ChangesUnseenFile,
    /// Changes a test file when the instruction says the tests are correct.
    ChangesTests,
}

/// A modified file keeping under this share of its non-blank lines counts as shrunk.
const SHRINK_SHARE: f64 = 0.4;
/// ... when it had at least this many non-blank lines.
const SHRINK_MIN_LINES: usize = 8;

/// What the instruction asks for, as far as its words tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intent {
    words: HashSet<String>,
    lowered: String,
    asks_removal: bool,
    asks_new_file: bool,
    tests_are_fixed: bool,
}

impl Intent {
    /// Reads what `instruction` asks for from its words.
    pub fn read(instruction: &str) -> Intent {
        let lowered = instruction.to_lowercase();
        let words: HashSet<String> = lowered
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/'))
            .map(|w| w.trim_matches(|c: char| c == '.' || c == '-' || c == '/').to_string())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |list: &[&str]| list.iter().any(|w| words.contains(*w));
        let asks_removal = has(&["delete", "remove", "rm", "drop", "erase", "shorten", "simplify", "trim", "strip", "empty", "clear", "prune", "cleanup"])
            || lowered.contains("clean up")
            || lowered.contains("get rid of");
        let asks_new_file = has(&["create"])
            || ["new file", "new module", "new test", "add a file", "split into", "move "].iter().any(|p| lowered.contains(p));
        let tests_are_fixed = [
            "tests are correct",
            "test is correct",
            "tests are right",
            "tests are fine",
            "do not change the test",
            "do not modify the test",
            "do not touch the test",
            "do not edit the test",
            "don't change the test",
            "don't modify the test",
            "don't touch the test",
            "don't edit the test",
            "leave the test",
            "without changing the test",
        ]
        .iter()
        .any(|p| lowered.contains(p));
        Intent { words, lowered, asks_removal, asks_new_file, tests_are_fixed }
    }

    /// Whether the instruction names `path`: the path itself, its file name, or its name
    /// without extension when that is distinctive (4+ characters, or has `_`/`-`).
    pub fn names(&self, path: &str) -> bool {
        let path = path.to_lowercase();
        let file = path.rsplit('/').next().unwrap_or(&path).to_string();
        let stem = file.split('.').next().unwrap_or(&file).to_string();
        self.lowered.contains(&path)
            || self.words.contains(&file)
            || ((stem.len() >= 4 || stem.contains(['_', '-'])) && self.words.contains(&stem))
    }
}

/// Holds the changes of `files` that the instruction did not ask for. `shown` lists the files
/// the prompt showed the model; `None` when unknown (an answer from elsewhere).
pub fn classify(files: &mut [FileChange], instruction: &str, shown: Option<&HashSet<String>>) {
    let intent = Intent::read(instruction);
    for f in files.iter_mut() {
        f.hold = hold_for(f, &intent, shown);
    }
}

fn hold_for(f: &FileChange, intent: &Intent, shown: Option<&HashSet<String>>) -> Option<Hold> {
    let path = f.path.as_str();
    let hold = |kind, reason: String, safe_action: String| Some(Hold { kind, reason, safe_action });
    if is_test_file(path) && intent.tests_are_fixed && f.kind != ChangeKind::Create {
        return hold(
            HoldKind::ChangesTests,
            format!("the instruction says the tests are correct, and this changes the test file {path}"),
            "apply only the changes to the code under test".into(),
        );
    }
    match f.kind {
        ChangeKind::Delete if !(intent.asks_removal && intent.names(path)) => {
            return hold(
                HoldKind::DeletesFile,
                format!("this deletes {path}, and the instruction does not ask for that file to be deleted"),
                format!("keep {path}; ask again, naming the change you want in it"),
            )
        }
        ChangeKind::Create if !(intent.names(path) || intent.asks_new_file) => {
            return hold(
                HoldKind::CreatesUnnamedFile,
                format!("this creates {path}, a file the instruction does not name"),
                "apply only the changes to existing files, or name the new file in the instruction".into(),
            )
        }
        ChangeKind::Modify => {
            if shown.is_some_and(|s| !s.contains(path)) && !intent.names(path) {
                return hold(
                    HoldKind::ChangesUnseenFile,
                    format!("this changes {path}, which the model was never shown, so it edited it blind"),
                    format!("name {path} in the instruction so the model sees it, then ask again"),
                );
            }
            let (old, new) = (non_blank_lines(&f.old_text), non_blank_lines(&f.new_text));
            if new == 0 && old > 0 && !intent.asks_removal {
                return hold(
                    HoldKind::EmptiesFile,
                    format!("this empties {path} ({old} lines), and the instruction does not ask to remove code"),
                    format!("keep {path} as it is; ask again for the specific change"),
                );
            }
            if old >= SHRINK_MIN_LINES && (new as f64) < old as f64 * SHRINK_SHARE && !intent.asks_removal {
                return hold(
                    HoldKind::ShrinksFile,
                    format!("this shrinks {path} from {old} to {new} lines, and the instruction does not ask to remove code"),
                    "review the removed lines hunk by hunk and apply only those you want".into(),
                );
            }
        }
        _ => {}
    }
    None
}

fn non_blank_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Test files by the common conventions of the languages users bring.
pub fn is_test_file(path: &str) -> bool {
    let lower = path.to_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    let stem = file.split('.').next().unwrap_or(file);
    // JUnit style, by case: TestParser.java, not testing.py.
    let original = path.rsplit('/').next().unwrap_or(path);
    let camel_test = original.starts_with("Test") && original[4..].starts_with(|c: char| c.is_ascii_uppercase());
    lower.split('/').rev().skip(1).any(|dir| matches!(dir, "test" | "tests" | "__tests__" | "spec" | "specs" | "testdata"))
        || stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_spec")
        || stem.ends_with("tests")
        || file.contains(".test.")
        || file.contains(".spec.")
        || camel_test
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::text::LineStyle;

    fn change(path: &str, kind: ChangeKind, old: &str, new: &str) -> FileChange {
        FileChange {
            path: path.into(),
            kind,
            base_sha256: None,
            style: LineStyle::default(),
            old_text: old.into(),
            new_text: new.into(),
            hunks: vec![],
            diff: String::new(),
            hold: None,
            notes: vec![],
        }
    }

    fn held(f: FileChange, instruction: &str, shown: Option<&[&str]>) -> Option<HoldKind> {
        let shown: Option<HashSet<String>> = shown.map(|s| s.iter().map(|p| p.to_string()).collect());
        let mut files = vec![f];
        classify(&mut files, instruction, shown.as_ref());
        files[0].hold.as_ref().map(|h| h.kind)
    }

    const CODE: &str = "def f(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    g = 6\n    h = 7\n    return x\n";

    #[test]
    fn deleting_is_held_unless_asked_for_by_name() {
        let del = || change("square_root.py", ChangeKind::Delete, CODE, "");
        let fix = "The tests are correct. Fix the code in square_root.py to resolve the errors.";
        assert_eq!(held(del(), fix, None), Some(HoldKind::DeletesFile));
        assert_eq!(held(del(), "delete the unused module", None), Some(HoldKind::DeletesFile), "not named");
        assert_eq!(held(del(), "square_root.py is obsolete", None), Some(HoldKind::DeletesFile), "no verb");
        assert_eq!(held(del(), "Remove square_root.py, it is unused", None), None);
        assert_eq!(held(del(), "delete the square_root module", None), None, "by its distinctive stem");
    }

    #[test]
    fn emptying_and_shrinking_are_held_unless_removal_is_asked() {
        let empty = || change("a.py", ChangeKind::Modify, CODE, "\n");
        assert_eq!(held(empty(), "fix the bug in a.py", None), Some(HoldKind::EmptiesFile));
        assert_eq!(held(empty(), "clear a.py", None), None);
        let shrink = || change("a.py", ChangeKind::Modify, CODE, "def f(x):\n    return x\n");
        assert_eq!(held(shrink(), "fix the bug in a.py", None), Some(HoldKind::ShrinksFile));
        assert_eq!(held(shrink(), "simplify f in a.py", None), None);
        // A small file rewritten shorter is ordinary editing.
        let small = change("b.py", ChangeKind::Modify, "x = 1\ny = 2\nz = 3\n", "x = 1\n");
        assert_eq!(held(small, "fix b.py", None), None);
        // Growing a file is never held.
        let grow = change("a.py", ChangeKind::Modify, CODE, &format!("{CODE}\ndef g():\n    pass\n"));
        assert_eq!(held(grow, "add g to a.py", None), None);
    }

    #[test]
    fn new_files_must_be_named_or_asked_for() {
        let new = || change("solution.py", ChangeKind::Create, "", "x = 1\n");
        assert_eq!(held(new(), "fix square_root.py", None), Some(HoldKind::CreatesUnnamedFile));
        assert_eq!(held(new(), "write solution.py", None), None);
        assert_eq!(held(new(), "create a helper module", None), None);
    }

    #[test]
    fn blind_edits_are_held_when_the_prompt_is_known() {
        let m = || change("other.py", ChangeKind::Modify, "x = 1\n", "x = 2\n");
        assert_eq!(held(m(), "fix a.py", Some(&["a.py"])), Some(HoldKind::ChangesUnseenFile));
        assert_eq!(held(m(), "fix a.py and other.py", Some(&["a.py"])), None, "named");
        assert_eq!(held(m(), "fix it", Some(&["a.py", "other.py"])), None, "shown");
        assert_eq!(held(m(), "fix it", None), None, "prompt unknown");
    }

    #[test]
    fn tests_are_kept_when_the_user_says_they_are_correct() {
        let t = |p: &str| change(p, ChangeKind::Modify, "assert f(1) == 1\n", "assert f(1) == 2\n");
        let fixed = "The tests are correct. Fix the code.";
        for p in ["square_root_test.py", "tests/test_a.py", "test_a.py", "src/a.test.js", "a_spec.rb", "FooTests.cs", "TestFoo.java"] {
            assert_eq!(held(t(p), fixed, None), Some(HoldKind::ChangesTests), "{p}");
        }
        assert_eq!(held(t("square_root.py"), fixed, None), None);
        assert_eq!(held(t("tests/test_a.py"), "fix the failing assertion in tests/test_a.py", None), None);
        assert_eq!(held(t("a_test.go"), "Don't touch the tests; make them pass", None), Some(HoldKind::ChangesTests));
    }

    #[test]
    fn test_file_conventions() {
        for p in ["test_x.py", "x_test.go", "tests/x.rs", "src/__tests__/a.js", "a.spec.ts", "TestParser.java", "ParserTests.cs"] {
            assert!(is_test_file(p), "{p}");
        }
        for p in ["latest.py", "contest.rs", "testing_utils.py", "src/attestation.rs", "tester.py"] {
            assert!(!is_test_file(p), "{p}");
        }
    }
}
