//! Finding a search block's lines in a file, forgiving what models get wrong.
//!
//! Tried in order: the exact lines; the lines with trailing whitespace ignored; the lines with
//! their indentation ignored, provided it is off by the same amount on every line (the
//! replacement is then re-indented by that amount). When nothing matches, the window of the
//! file most like the search is reported so the user sees what the model was aiming at.

use serde::{Deserialize, Serialize};

/// Where a search block matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 0-based line range in the file.
    pub start: usize,
    /// Exclusive end of the 0-based line range.
    pub end: usize,
    /// The replacement, re-indented when the match needed it.
    pub replacement: Vec<String>,
}

/// The lines of a file most like a search block that matched nowhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ClosestLines {
    /// 1-based.
    pub start_line: usize,
    /// The lines themselves, without line breaks.
    pub lines: Vec<String>,
    /// How alike the lines are, 0 to 1.
    pub similarity: f32,
}

/// Finds `search` in `file` (both as lines without breaks); `replace` is adjusted to the match.
pub fn locate(file: &[&str], search: &[&str], replace: &[&str]) -> Result<Found, Option<ClosestLines>> {
    let search = trim_blank_edges(search);
    if search.is_empty() || search.len() > file.len() {
        return Err(closest(file, search));
    }
    let owned = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let windows = 0..=file.len() - search.len();
    for start in windows.clone() {
        if file[start..start + search.len()] == *search {
            return Ok(Found { start, end: start + search.len(), replacement: owned(replace) });
        }
    }
    for start in windows.clone() {
        let window = &file[start..start + search.len()];
        if window.iter().zip(search).all(|(a, b)| a.trim_end() == b.trim_end()) {
            return Ok(Found { start, end: start + search.len(), replacement: owned(replace) });
        }
    }
    for start in windows {
        let window = &file[start..start + search.len()];
        if let Some(shift) = indentation_shift(window, search) {
            let replacement = replace.iter().map(|l| reindent(l, &shift)).collect();
            return Ok(Found { start, end: start + search.len(), replacement });
        }
    }
    Err(closest(file, search))
}

/// How the file's indentation differs from the search's, when it differs the same way on
/// every non-blank line and the lines are otherwise equal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shift {
    Add(String),
    Remove(usize),
}

fn indentation_shift(window: &[&str], search: &[&str]) -> Option<Shift> {
    let mut shift: Option<Shift> = None;
    for (f, s) in window.iter().zip(search) {
        if f.trim().is_empty() && s.trim().is_empty() {
            continue;
        }
        if f.trim() != s.trim() {
            return None;
        }
        let fi = &f[..f.len() - f.trim_start().len()];
        let si = &s[..s.len() - s.trim_start().len()];
        let this = if let Some(extra) = fi.strip_suffix(si) {
            Shift::Add(extra.to_string())
        } else if si.ends_with(fi) {
            Shift::Remove(si.len() - fi.len())
        } else {
            return None;
        };
        match &shift {
            None => shift = Some(this),
            Some(s) if *s == this => {}
            Some(_) => return None,
        }
    }
    shift
}

fn reindent(line: &str, shift: &Shift) -> String {
    if line.trim().is_empty() {
        return line.to_string();
    }
    match shift {
        Shift::Add(extra) => format!("{extra}{line}"),
        Shift::Remove(n) => {
            let indent = line.len() - line.trim_start().len();
            line[(*n).min(indent)..].to_string()
        }
    }
}

fn trim_blank_edges<'a, 'b>(lines: &'a [&'b str]) -> &'a [&'b str] {
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(first, |l| l + 1);
    &lines[first..last.max(first)]
}

/// The window of `file`, as long as `search`, whose lines are most like the search's, line
/// by line (so an off-by-one window loses to the aligned one).
fn closest(file: &[&str], search: &[&str]) -> Option<ClosestLines> {
    if search.iter().all(|l| l.trim().is_empty()) || file.is_empty() {
        return None;
    }
    let len = search.len().min(file.len());
    let line_likeness = |a: &str, b: &str| {
        let (a, b) = (a.trim(), b.trim());
        if a == b {
            1.0
        } else {
            similar::TextDiff::from_chars(a, b).ratio()
        }
    };
    let (mut best, mut best_score) = (0, 0.0f32);
    for start in 0..=file.len() - len {
        let score: f32 = file[start..start + len].iter().zip(search).map(|(a, b)| line_likeness(a, b)).sum();
        if score > best_score {
            (best, best_score) = (start, score);
        }
    }
    let similarity = best_score / len as f32;
    (similarity >= 0.3).then(|| ClosestLines {
        start_line: best + 1,
        lines: file[best..best + len].iter().map(|s| s.to_string()).collect(),
        similarity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[&str] = &["class A:", "    def f(self):", "        return 1  ", "", "    def g(self):", "        return 2"];

    #[test]
    fn exact_match() {
        let f = locate(FILE, &["    def g(self):", "        return 2"], &["    def g(self):", "        return 3"]).unwrap();
        assert_eq!((f.start, f.end), (4, 6));
    }

    #[test]
    fn trailing_whitespace_and_blank_edges_are_forgiven() {
        let f = locate(FILE, &["", "    def f(self):", "        return 1", ""], &["x"]).unwrap();
        assert_eq!((f.start, f.end), (1, 3));
    }

    #[test]
    fn indentation_drift_is_matched_and_the_replacement_reindented() {
        let f = locate(FILE, &["def g(self):", "    return 2"], &["def g(self):", "    return 3", "", "  # note"]).unwrap();
        assert_eq!((f.start, f.end), (4, 6));
        assert_eq!(f.replacement, ["    def g(self):", "        return 3", "", "      # note"]);
        let deeper = locate(FILE, &["            return 2"], &["            return 4"]).unwrap();
        assert_eq!(deeper.replacement, ["        return 4"]);
    }

    #[test]
    fn no_match_reports_the_closest_lines() {
        let e = locate(FILE, &["    def g(self):", "        return 42"], &[]).unwrap_err().unwrap();
        assert_eq!(e.start_line, 5);
        assert_eq!(e.lines, ["    def g(self):", "        return 2"]);
        assert!(locate(FILE, &["nothing like it"], &[]).unwrap_err().is_none());
    }
}
