//! The file references in an answer (`src/a.rs`, `src/a.rs:12`, `src/a.rs:12-30`), checked
//! against the project so the UI can link them and flag the ones that point nowhere.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::edit::target::{resolve, Resolved};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A place in the project an answer cites (`src/lib.rs:10-20`), checked against the files.
pub struct Citation {
    /// As the answer wrote it.
    pub text: String,
    /// The project file it names (project-relative), when it names one.
    pub path: Option<String>,
    /// First cited line (1-based), when the citation names lines.
    pub start_line: Option<usize>,
    /// Last cited line (inclusive); the same as `start_line` for one line.
    pub end_line: Option<usize>,
    /// The file exists and the lines are within it.
    pub valid: bool,
    /// Why it is not valid.
    pub problem: Option<String>,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?P<path>[A-Za-z0-9_.@+\-/\\]*[A-Za-z0-9_\-]\.[A-Za-z0-9]{1,10})(?::(?P<start>\d+)(?:\s*[-–]\s*(?P<end>\d+))?)?")
            .expect("citation pattern compiles")
    })
}

/// The references in `answer` to files of the project at `root` (`known`: its files).
/// Path-like words that match no file are kept only when they carry line numbers (a
/// hallucinated `src/x.rs:10` is worth flagging; "e.g." is not).
pub fn find(answer: &str, root: &Path, known: &[String]) -> Vec<Citation> {
    let mut out: Vec<Citation> = Vec::new();
    for m in pattern().captures_iter(answer) {
        let text = m[0].to_string();
        let written = &m["path"];
        let start = m.name("start").and_then(|s| s.as_str().parse::<usize>().ok());
        let end = m.name("end").and_then(|s| s.as_str().parse::<usize>().ok()).or(start);
        if out.iter().any(|c| c.text == text) {
            continue;
        }
        let path = match resolve(written, root, known) {
            Ok(Resolved::Existing(p)) => Some(p),
            _ => None,
        };
        let problem = match (&path, start, end) {
            (None, None, _) => continue,
            (None, Some(_), _) => Some(format!("the project has no file {written}")),
            (Some(_), None, _) => None,
            (Some(p), Some(s), Some(e)) => {
                let lines = std::fs::read(root.join(p)).map(|b| count_lines(&b)).unwrap_or(0);
                if s == 0 || e < s {
                    Some(format!("{s}-{e} is not a line range"))
                } else if e > lines {
                    Some(format!("{p} has {lines} lines, so line {e} does not exist"))
                } else {
                    None
                }
            }
            (Some(_), Some(_), None) => None,
        };
        out.push(Citation { text, valid: problem.is_none(), path, start_line: start, end_line: end, problem });
    }
    out
}

fn count_lines(bytes: &[u8]) -> usize {
    let n = bytes.iter().filter(|&&b| b == b'\n').count();
    n + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_against_files_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "a\nb\nc\nd\n").unwrap();
        let known = vec!["src/lib.rs".to_string()];
        let answer = "See src/lib.rs:2-3 and `lib.rs:4`, also src/lib.rs:3-9, src/nope.rs:1, e.g. and src/lib.rs.";
        let c = find(answer, dir.path(), &known);
        let summary: Vec<_> = c.iter().map(|c| (c.text.as_str(), c.path.as_deref(), c.valid)).collect();
        assert_eq!(summary, [
            ("src/lib.rs:2-3", Some("src/lib.rs"), true),
            ("lib.rs:4", Some("src/lib.rs"), true),
            ("src/lib.rs:3-9", Some("src/lib.rs"), false),
            ("src/nope.rs:1", None, false),
            ("src/lib.rs", Some("src/lib.rs"), true),
        ]);
        assert!(c[2].problem.as_deref().unwrap().contains("has 4 lines"));
        assert_eq!((c[1].start_line, c[1].end_line), (Some(4), Some(4)));
    }
}
