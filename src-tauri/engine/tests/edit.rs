//! Edit proposals from recorded model answers (tests/fixtures/edits), applied to a copy of
//! the fixture project and undone: parse, match, diff, partial apply, conflict, undo, path
//! escapes, CRLF, no final newline, non-UTF-8, changes held for confirmation. Plus property
//! tests: arbitrary answers never panic, never write outside the project, and never make a
//! destructive change the instruction did not ask for without confirmation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use perimeter_engine::assistant::PromptReport;
use perimeter_engine::edit::{self, ChangeKind, EditAnswer, EditFormat, History, Proposal, Selection};
use perimeter_engine::inference::{StopReason, Usage};
use perimeter_engine::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn answer(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("edits").join(name)).unwrap()
}

/// A copy of the shop fixture project (in `<tmp>/shop`, beside an `outside` folder), its
/// file list and an undo history in `<tmp>/data`.
struct Project {
    tmp: tempfile::TempDir,
    known: Vec<String>,
}

impl Project {
    fn new() -> Project {
        Project::of("shop")
    }
    /// A copy of the fixture project `name`, in `<tmp>/shop`.
    fn of(name: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("shop");
        let mut known = Vec::new();
        copy_dir(&fixtures().join("projects").join(name), &root, &root, &mut known);
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("victim.txt"), "keep me\n").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n\tbare = false\n").unwrap();
        known.sort();
        Project { tmp, known }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("shop")
    }
    fn history(&self) -> History {
        edit::history(&self.tmp.path().join("data"))
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }
    fn propose(&self, text: &str, format: EditFormat) -> Proposal {
        self.propose_for("test", text, format)
    }
    fn propose_for(&self, instruction: &str, text: &str, format: EditFormat) -> Proposal {
        let answer = EditAnswer {
            model: "fixture".into(),
            text: text.into(),
            stop: StopReason::EndOfText,
            usage: Usage::default(),
            context: PromptReport::default(),
        };
        edit::propose(&self.root(), &self.known, instruction, format, answer, &HashMap::new(), false)
    }
    fn apply(&self, p: &Proposal, s: Selection) -> perimeter_engine::Result<edit::AppliedChange> {
        edit::apply(&self.root(), &self.history(), &p.id, &p.instruction, &p.files, &s, false)
    }
    fn apply_confirmed(&self, p: &Proposal, s: Selection) -> perimeter_engine::Result<edit::AppliedChange> {
        edit::apply(&self.root(), &self.history(), &p.id, &p.instruction, &p.files, &s, true)
    }
}

fn copy_dir(from: &Path, to: &Path, root: &Path, known: &mut Vec<String>) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target, root, known);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            known.push(target.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn whole_file_answer_applies_and_undoes_exactly() {
    let p = Project::new();
    let before_pricing = std::fs::read(p.root().join("shop/pricing.py")).unwrap();
    let proposal = p.propose(&answer("whole-file-well-formed.txt"), EditFormat::WholeFile);
    assert_eq!(proposal.problems, vec![]);
    let paths: Vec<_> = proposal.files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
    assert_eq!(paths, [("shop/pricing.py", ChangeKind::Modify), ("tests/test_cart.py", ChangeKind::Modify)]);
    // Two separate places change in pricing.py: two hunks, numbered across the proposal.
    let numbers: Vec<usize> = proposal.files.iter().flat_map(|f| f.hunks.iter().map(|h| h.number)).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(proposal.files[0].diff.contains("-SALES_TAX_RATE = 0.0825\n+SALES_TAX_RATE = 0.09\n"), "{}", proposal.files[0].diff);

    let applied = p.apply(&proposal, Selection::All).unwrap();
    assert!(p.read("shop/pricing.py").contains("SALES_TAX_RATE = 0.09"));
    assert!(p.read("tests/test_cart.py").contains("2.18"));
    assert_eq!(p.history().list().unwrap()[0].id, applied.id);

    edit::undo(&p.root(), &p.history(), None).unwrap();
    assert_eq!(std::fs::read(p.root().join("shop/pricing.py")).unwrap(), before_pricing);
    assert!(p.read("tests/test_cart.py").contains("2.17"));
    let e = edit::undo(&p.root(), &p.history(), Some(&applied.id)).unwrap_err();
    assert!(matches!(e, Error::AlreadyUndone { .. }), "{e}");
    assert!(matches!(edit::undo(&p.root(), &p.history(), None).unwrap_err(), Error::NothingToUndo));
}

#[test]
fn chosen_hunks_only() {
    let p = Project::new();
    let proposal = p.propose(&answer("whole-file-well-formed.txt"), EditFormat::WholeFile);
    p.apply(&proposal, Selection::Hunks(vec![2])).unwrap();
    let pricing = p.read("shop/pricing.py");
    assert!(pricing.contains("SALES_TAX_RATE = 0.0825"), "hunk 1 not applied");
    assert!(pricing.contains("return round(subtotal * (100 - percent) / 100, 2)"), "hunk 2 applied");
    assert!(p.read("tests/test_cart.py").contains("2.17"), "hunk 3 not applied");

    // The rest of the same proposal no longer applies to pricing.py: it changed.
    let e = p.apply(&proposal, Selection::Hunks(vec![1])).unwrap_err();
    assert!(matches!(&e, Error::EditConflict { paths } if paths == &["shop/pricing.py"]), "{e}");
    // But a file it did not touch still can be, by file.
    p.apply(&proposal, Selection::Files(vec!["tests/test_cart.py".into()])).unwrap();
    assert!(p.read("tests/test_cart.py").contains("2.18"));
    assert!(matches!(p.apply(&proposal, Selection::Hunks(vec![99])).unwrap_err(), Error::EmptySelection(_)));
}

#[test]
fn a_file_changed_since_the_proposal_is_a_conflict_and_nothing_is_written() {
    let p = Project::new();
    let proposal = p.propose(&answer("whole-file-well-formed.txt"), EditFormat::WholeFile);
    std::fs::write(p.root().join("tests/test_cart.py"), "# edited by the user meanwhile\n").unwrap();
    let e = p.apply(&proposal, Selection::All).unwrap_err();
    assert!(e.to_string().contains("tests/test_cart.py changed on disk"), "{e}");
    assert!(p.read("shop/pricing.py").contains("0.0825"), "no file written");
    assert!(p.history().list().unwrap().is_empty());
}

#[test]
fn undo_refuses_when_the_file_changed_again() {
    let p = Project::new();
    let proposal = p.propose(&answer("whole-file-well-formed.txt"), EditFormat::WholeFile);
    p.apply(&proposal, Selection::All).unwrap();
    std::fs::write(p.root().join("shop/pricing.py"), "user's newer work\n").unwrap();
    let e = edit::undo(&p.root(), &p.history(), None).unwrap_err();
    assert!(e.to_string().contains("shop/pricing.py changed since it was applied"), "{e}");
    assert_eq!(p.read("shop/pricing.py"), "user's newer work\n");
    assert!(p.read("tests/test_cart.py").contains("2.18"), "undo is all or nothing");
}

#[test]
fn search_replace_blocks_new_file_and_undo_removes_it() {
    let p = Project::new();
    let instruction = "make Cart.remove strict, with a new file shop/errors.py";
    let proposal = p.propose_for(instruction, &answer("search-replace-well-formed.txt"), EditFormat::SearchReplace);
    assert_eq!(proposal.problems, vec![]);
    assert_eq!(proposal.held().count(), 0, "the instruction names the new file");
    let kinds: Vec<_> = proposal.files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
    assert_eq!(kinds, [("shop/cart.py", ChangeKind::Modify), ("shop/errors.py", ChangeKind::Create)]);
    p.apply(&proposal, Selection::All).unwrap();
    assert!(p.read("shop/cart.py").contains("raise KeyError(name)"));
    assert!(p.read("shop/cart.py").contains("def count(self):"));
    assert!(p.read("shop/errors.py").starts_with("class CartError"));
    edit::undo(&p.root(), &p.history(), None).unwrap();
    assert!(!p.root().join("shop/errors.py").exists());
    assert_eq!(p.read("shop/cart.py"), std::fs::read_to_string(fixtures().join("projects/shop/shop/cart.py")).unwrap());
}

#[test]
fn drift_is_forgiven_and_an_unmatched_block_shows_the_closest_lines() {
    let p = Project::new();
    let proposal = p.propose(&answer("search-replace-drift.txt"), EditFormat::SearchReplace);
    assert_eq!(proposal.files.len(), 1);
    let new = &proposal.files[0].new_text;
    assert!(new.contains("    def subtotal(self):\n        \"\"\"Sum of price times quantity.\"\"\"\n"), "re-indented: {new}");
    assert_eq!(proposal.problems.len(), 1);
    let problem = &proposal.problems[0];
    assert_eq!((problem.block, problem.path.as_deref()), (2, Some("shop/pricing.py")));
    let closest = problem.closest.as_ref().expect("closest lines");
    assert_eq!((closest.start_line, closest.lines.as_slice()), (4, &["SALES_TAX_RATE = 0.0825".to_string()][..]));
}

#[test]
fn recorded_small_model_answers_give_no_usable_edit_and_say_why() {
    let p = Project::new();
    let whole = p.propose(&answer("smollm2-135m-whole-file-no-path.txt"), EditFormat::WholeFile);
    assert!(whole.files.is_empty());
    assert!(whole.problems[0].reason.contains("no file path"), "{:?}", whole.problems);
    assert!(whole.empty_reason().unwrap().contains("no usable edit"));
    let sr = p.propose(&answer("smollm2-135m-search-replace-prose.txt"), EditFormat::SearchReplace);
    assert!(sr.files.is_empty());
    assert!(sr.empty_reason().unwrap().contains("no usable edit"));

    // A file given back as it is (what Qwen2.5-Coder-0.5B does on most second tries of the
    // edit benchmark) is said as that, not as a format problem.
    let same = format!("shop/pricing.py\n```python\n{}```\n", p.read("shop/pricing.py"));
    let copied = p.propose(&same, EditFormat::WholeFile);
    assert!(copied.files.is_empty() && copied.problems.is_empty());
    assert_eq!(copied.unchanged, ["shop/pricing.py"]);
    let reason = copied.empty_reason().unwrap();
    assert!(reason.contains("gave shop/pricing.py back unchanged"), "{reason}");
}

#[test]
fn paths_leaving_the_project_or_into_git_are_refused() {
    let p = Project::new();
    #[cfg(unix)]
    std::os::unix::fs::symlink(p.tmp.path().join("outside"), p.root().join("link")).unwrap();
    let proposal = p.propose(&answer("escapes.txt"), EditFormat::WholeFile);
    assert!(proposal.files.is_empty(), "{:#?}", proposal.files);
    assert_eq!(proposal.problems.len(), 5, "{:#?}", proposal.problems);
    for problem in &proposal.problems {
        assert!(problem.reason.starts_with("refusing to write"), "{}", problem.reason);
    }
    assert!(!p.tmp.path().join("outside.txt").exists());
    assert!(!Path::new("/etc/perimeter-test-escape").exists());
    assert!(!p.tmp.path().join("outside/escaped.txt").exists());
    assert_eq!(std::fs::read_to_string(p.tmp.path().join("victim.txt")).unwrap(), "keep me\n");
}

#[test]
fn crlf_and_missing_final_newline_are_kept() {
    let p = Project::new();
    std::fs::write(p.root().join("win.txt"), "alpha\r\nbeta\r\ngamma").unwrap();
    let mut known = p.known.clone();
    known.push("win.txt".into());
    let p = Project { known, ..p };
    let proposal = p.propose("win.txt\n```\nalpha\nBETA\ngamma\n```\n", EditFormat::WholeFile);
    assert_eq!(proposal.files[0].hunks.len(), 1);
    p.apply(&proposal, Selection::All).unwrap();
    assert_eq!(std::fs::read(p.root().join("win.txt")).unwrap(), b"alpha\r\nBETA\r\ngamma");
    edit::undo(&p.root(), &p.history(), None).unwrap();
    assert_eq!(std::fs::read(p.root().join("win.txt")).unwrap(), b"alpha\r\nbeta\r\ngamma");
}

#[test]
fn non_utf8_files_are_refused_clearly() {
    let p = Project::new();
    std::fs::write(p.root().join("latin1.txt"), b"caf\xe9\n").unwrap();
    let proposal = p.propose("latin1.txt\n```\ncafe\n```\n", EditFormat::WholeFile);
    assert!(proposal.files.is_empty());
    assert!(proposal.problems[0].reason.contains("latin1.txt is not UTF-8 text"), "{:?}", proposal.problems);
    assert_eq!(std::fs::read(p.root().join("latin1.txt")).unwrap(), b"caf\xe9\n");
}

#[cfg(unix)]
#[test]
fn permissions_are_kept_and_deleted_files_come_back_on_undo() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    std::fs::write(p.root().join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(p.root().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let answer = "run.sh\n```sh\n#!/bin/sh\necho hello\n```\n\nDELETE README.md\n";
    let proposal = p.propose_for("say hello in run.sh and delete README.md", answer, EditFormat::WholeFile);
    let kinds: Vec<_> = proposal.files.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [ChangeKind::Modify, ChangeKind::Delete]);
    assert_eq!(proposal.held().count(), 0, "the deletion was asked for");
    p.apply(&proposal, Selection::All).unwrap();
    assert_eq!(std::fs::metadata(p.root().join("run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(!p.root().join("README.md").exists());
    edit::undo(&p.root(), &p.history(), None).unwrap();
    assert!(p.read("README.md").starts_with("# shop"));
    assert_eq!(p.read("run.sh"), "#!/bin/sh\necho hi\n");
}

/// Recorded from Qwen2.5-Coder-0.5B-Instruct Q4_K_M: asked to fix a file whose tests failed,
/// it answered by deleting it. The deletion is held; nothing is written without confirmation.
#[test]
fn a_small_model_deleting_the_file_it_was_asked_to_fix_is_held() {
    let p = Project::of("square-root");
    let before = p.read("square_root.py");
    let instruction = "FAIL: test_perfect_squares (square_root_test.SquareRootTest)\nAssertionError: 1 != 2\n\n\
                       The tests are correct. Fix the code in square_root.py to resolve the errors.";
    let proposal = p.propose_for(instruction, &answer("qwen2.5-coder-0.5b-delete-instead-of-fix.txt"), EditFormat::WholeFile);
    assert_eq!(proposal.files.len(), 1);
    let hold = proposal.files[0].hold.as_ref().expect("the deletion is held");
    assert_eq!(hold.kind, edit::HoldKind::DeletesFile);
    assert!(hold.reason.contains("deletes square_root.py"), "{}", hold.reason);

    let e = p.apply(&proposal, Selection::All).unwrap_err();
    assert!(matches!(&e, Error::HeldChange { paths, .. } if paths == &["square_root.py"]), "{e}");
    assert!(e.to_string().starts_with("nothing was written"), "{e}");
    assert_eq!(p.read("square_root.py"), before);
    assert!(p.history().list().unwrap().is_empty());
    // Without the held change there is nothing left to apply.
    assert_eq!(proposal.unheld(&Selection::All), Selection::Hunks(vec![]));

    // The user's explicit confirmation applies it, and undo brings the file back.
    p.apply_confirmed(&proposal, Selection::All).unwrap();
    assert!(!p.root().join("square_root.py").exists());
    edit::undo(&p.root(), &p.history(), None).unwrap();
    assert_eq!(p.read("square_root.py"), before);
}

#[test]
fn held_changes_are_left_out_and_the_rest_applies() {
    let p = Project::new();
    // Tests changed although the user said they are correct: held; the code change is not.
    let instruction = "The tests are correct. Change the tax rate in shop/pricing.py to 0.09.";
    let proposal = p.propose_for(instruction, &answer("whole-file-well-formed.txt"), EditFormat::WholeFile);
    let held: Vec<_> = proposal.held().map(|f| (f.path.as_str(), f.hold.as_ref().unwrap().kind)).collect();
    assert_eq!(held, [("tests/test_cart.py", edit::HoldKind::ChangesTests)]);
    assert!(p.apply(&proposal, Selection::All).is_err());
    assert!(p.apply(&proposal, Selection::Hunks(vec![3])).is_err(), "hunk 3 is the test file's");
    let safe = proposal.unheld(&Selection::All);
    assert_eq!(safe, Selection::Hunks(vec![1, 2]));
    p.apply(&proposal, safe).unwrap();
    assert!(p.read("shop/pricing.py").contains("SALES_TAX_RATE = 0.09"));
    assert!(p.read("tests/test_cart.py").contains("2.17"), "the test file is untouched");
    assert_eq!(proposal.unheld(&Selection::Files(vec!["tests/test_cart.py".into()])), Selection::Files(vec![]));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Pieces models write, to build answers that look like edits more often than random text.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("```".to_string()),
            Just("```python".to_string()),
            Just("~~~~".to_string()),
            Just("<<<<<<< SEARCH".to_string()),
            Just("=======".to_string()),
            Just(">>>>>>> REPLACE".to_string()),
            Just("shop/cart.py".to_string()),
            Just("**shop/pricing.py**".to_string()),
            Just("../escape.txt".to_string()),
            Just("/tmp/perimeter-prop-escape.txt".to_string()),
            Just(".git/config".to_string()),
            Just("link/out.txt".to_string()),
            Just("DELETE ../victim.txt".to_string()),
            Just("DELETE shop/cart.py".to_string()),
            Just("DELETE README.md".to_string()),
            Just("tests/test_cart.py".to_string()),
            Just("assert True".to_string()),
            Just("    def remove(self, name):".to_string()),
            Just("        self.items.pop(name, None)".to_string()),
            Just("new/file.txt".to_string()),
            Just(String::new()),
            "\\PC{0,30}",
        ]
    }

    fn answer_text() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..40).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn parser_never_panics(text in "\\PC{0,400}", whole in any::<bool>()) {
            let _ = edit::parse::parse(&text, whole);
        }

        #[test]
        fn applying_any_answer_never_writes_outside_the_project(text in answer_text(), whole in any::<bool>()) {
            let p = Project::new();
            #[cfg(unix)]
            std::os::unix::fs::symlink(p.tmp.path().join("outside"), p.root().join("link")).unwrap();
            let format = if whole { EditFormat::WholeFile } else { EditFormat::SearchReplace };
            let proposal = p.propose(&text, format);
            for f in &proposal.files {
                prop_assert!(!f.path.starts_with('/') && !f.path.split('/').any(|c| c == ".." || c == ".git"), "{}", f.path);
            }
            if !proposal.files.is_empty() {
                let _ = p.apply(&proposal, Selection::All);
                let _ = edit::undo(&p.root(), &p.history(), None);
            }
            prop_assert_eq!(std::fs::read_to_string(p.tmp.path().join("victim.txt")).unwrap(), "keep me\n");
            prop_assert!(std::fs::read_dir(p.tmp.path().join("outside")).unwrap().next().is_none());
            prop_assert!(!p.tmp.path().join("escape.txt").exists());
            prop_assert!(!Path::new("/tmp/perimeter-prop-escape.txt").exists());
            prop_assert_eq!(p.read(".git/config"), "[core]\n\tbare = false\n");
        }

        /// Asked for a fix, with the tests declared correct: whatever the model answers,
        /// applying it without confirmation deletes, empties or guts no file, creates none,
        /// and leaves the tests as they were.
        #[test]
        fn no_destructive_change_is_written_without_confirmation(text in answer_text(), whole in any::<bool>()) {
            let p = Project::new();
            let before: Vec<(String, Vec<u8>)> = p.known.iter().map(|f| (f.clone(), std::fs::read(p.root().join(f)).unwrap())).collect();
            let format = if whole { EditFormat::WholeFile } else { EditFormat::SearchReplace };
            let proposal = p.propose_for("The tests are correct. Fix the bug in shop/cart.py.", &text, format);
            let _ = p.apply(&proposal, Selection::All);
            let _ = p.apply(&proposal, proposal.unheld(&Selection::All));
            let non_blank = |b: &[u8]| String::from_utf8_lossy(b).lines().filter(|l| !l.trim().is_empty()).count();
            for (path, old) in &before {
                let now = std::fs::read(p.root().join(path));
                prop_assert!(now.is_ok(), "{} was deleted", path);
                let now = now.unwrap();
                if path.starts_with("tests/") {
                    prop_assert_eq!(&now, old, "{} changed", path);
                }
                let (o, n) = (non_blank(old), non_blank(&now));
                prop_assert!(o == 0 || n > 0, "{} was emptied", path);
                prop_assert!(o < 8 || n as f64 >= o as f64 * 0.4, "{} shrank from {} to {} lines", path, o, n);
            }
            let mut after = Vec::new();
            file_names(&p.root(), &p.root(), &mut after);
            prop_assert_eq!(after.len(), before.len(), "a file was created: {:?}", after);
        }
    }

    /// Every file under `dir`, outside `.git`.
    fn file_names(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() == ".git" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                file_names(&e.path(), root, out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
}
