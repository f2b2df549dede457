//! Line diffs between a file's text before and after an edit, as numbered hunks that can be
//! shown as a unified diff and applied one by one.

use serde::{Deserialize, Serialize};
use similar::{capture_diff_slices, group_diff_ops, Algorithm, DiffOp, DiffTag};

use super::text::lines_with_endings;

/// Unchanged lines shown around each change.
const CONTEXT_LINES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
/// What a diff line does.
pub enum LineKind {
    /// Unchanged, shown around a change.
    Context,
    /// Only in the new text.
    Added,
    /// Only in the old text.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// One line of a hunk.
pub struct DiffLine {
    /// Context, added or removed.
    pub kind: LineKind,
    /// The line without its line break.
    pub text: String,
    /// The line has no line break: the file's last line.
    pub no_newline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A run of changed lines with their context, as in a unified diff.
pub struct Hunk {
    /// 1-based, across the whole proposal (what `--apply-hunks` and the UI select by).
    pub number: usize,
    /// 1-based first line and line count on each side, as in a unified diff header.
    pub old_start: usize,
    /// See `old_start`.
    pub old_lines: usize,
    /// See `old_start`.
    pub new_start: usize,
    /// See `old_start`.
    pub new_lines: usize,
    /// In order: context, removed and added lines.
    pub lines: Vec<DiffLine>,
}

impl Hunk {
    /// The `@@ -a,b +c,d @@` line.
    pub fn header(&self) -> String {
        format!("@@ -{},{} +{},{} @@", self.old_start, self.old_lines, self.new_start, self.new_lines)
    }
}

fn ops(old: &[&str], new: &[&str]) -> Vec<DiffOp> {
    capture_diff_slices(Algorithm::Myers, old, new)
}

/// The hunks turning `old` into `new`, numbered from `first_number`.
pub fn hunks(old: &str, new: &str, first_number: usize) -> Vec<Hunk> {
    let (a, b) = (lines_with_endings(old), lines_with_endings(new));
    let line = |kind, s: &str| DiffLine {
        kind,
        text: s.strip_suffix('\n').unwrap_or(s).to_string(),
        no_newline: !s.ends_with('\n'),
    };
    group_diff_ops(ops(&a, &b), CONTEXT_LINES)
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            let mut lines = Vec::new();
            for op in &group {
                let (tag, old_r, new_r) = op.as_tag_tuple();
                match tag {
                    DiffTag::Equal => lines.extend(a[old_r].iter().map(|s| line(LineKind::Context, s))),
                    _ => {
                        lines.extend(a[old_r].iter().map(|s| line(LineKind::Removed, s)));
                        lines.extend(b[new_r].iter().map(|s| line(LineKind::Added, s)));
                    }
                }
            }
            let (first, last) = (&group[0], &group[group.len() - 1]);
            let old_lines = last.old_range().end - first.old_range().start;
            let new_lines = last.new_range().end - first.new_range().start;
            // A unified diff numbers an empty side by the line before it.
            let start = |s: usize, n: usize| if n == 0 { s } else { s + 1 };
            Hunk {
                number: first_number + i,
                old_start: start(first.old_range().start, old_lines),
                old_lines,
                new_start: start(first.new_range().start, new_lines),
                new_lines,
                lines,
            }
        })
        .collect()
}

/// `old` with only the chosen hunks of the `old`→`new` diff applied. Hunks are counted from
/// 0 in the order [`hunks`] returns them.
pub fn apply_selected(old: &str, new: &str, chosen: &dyn Fn(usize) -> bool) -> String {
    let (a, b) = (lines_with_endings(old), lines_with_endings(new));
    let all = ops(&a, &b);
    // Which hunk each change belongs to, by where it starts in the old text.
    let mut hunk_of = std::collections::HashMap::new();
    for (i, group) in group_diff_ops(all.clone(), CONTEXT_LINES).iter().enumerate() {
        for op in group.iter().filter(|o| o.tag() != DiffTag::Equal) {
            hunk_of.insert((op.old_range().start, op.new_range().start), i);
        }
    }
    let mut out = String::with_capacity(old.len().max(new.len()));
    for op in &all {
        let (tag, old_r, new_r) = op.as_tag_tuple();
        let take_new = tag != DiffTag::Equal && hunk_of.get(&(old_r.start, new_r.start)).is_some_and(|h| chosen(*h));
        let lines = if take_new { &b[new_r] } else { &a[old_r] };
        lines.iter().for_each(|l| out.push_str(l));
    }
    out
}

/// A unified diff of one file, as `git diff` prints it.
pub fn unified(old_path: Option<&str>, new_path: Option<&str>, hunks: &[Hunk]) -> String {
    let mut out = format!(
        "--- {}\n+++ {}\n",
        old_path.map_or("/dev/null".to_string(), |p| format!("a/{p}")),
        new_path.map_or("/dev/null".to_string(), |p| format!("b/{p}"))
    );
    for h in hunks {
        out.push_str(&h.header());
        out.push('\n');
        for l in &h.lines {
            let sign = match l.kind {
                LineKind::Context => ' ',
                LineKind::Added => '+',
                LineKind::Removed => '-',
            };
            out.push(sign);
            out.push_str(&l.text);
            out.push('\n');
            if l.no_newline {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn distant_changes_are_separate_hunks_with_correct_headers() {
        let old = numbered(30);
        let new = old.replace("line 2\n", "line two\n").replace("line 25\n", "").replace("line 30\n", "line 30\nline 31\n");
        let h = hunks(&old, &new, 1);
        assert_eq!(h.len(), 2, "{h:#?}");
        assert_eq!(h[0].header(), "@@ -1,5 +1,5 @@");
        assert_eq!(h[1].header(), "@@ -22,9 +22,9 @@");
        assert_eq!((h[0].number, h[1].number), (1, 2));
        assert_eq!(apply_selected(&old, &new, &|_| true), new);
        assert_eq!(apply_selected(&old, &new, &|_| false), old);
        let only_second = apply_selected(&old, &new, &|i| i == 1);
        assert!(only_second.contains("line 2\n") && !only_second.contains("line 25\n") && only_second.contains("line 31"));
    }

    #[test]
    fn unified_diff_marks_a_missing_final_newline() {
        let h = hunks("a\nb", "a\nc", 1);
        let d = unified(Some("f.txt"), Some("f.txt"), &h);
        assert_eq!(d, "--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n");
    }

    #[test]
    fn new_and_deleted_files_number_the_empty_side_zero() {
        let h = hunks("", "x\ny\n", 1);
        assert_eq!(h[0].header(), "@@ -0,0 +1,2 @@");
        let h = hunks("x\n", "", 1);
        assert_eq!(h[0].header(), "@@ -1,1 +0,0 @@");
    }
}
