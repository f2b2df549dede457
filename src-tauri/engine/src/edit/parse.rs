//! Reading edits out of a model's answer, tolerantly.
//!
//! Two formats are asked for (see [`super::format`]): whole files, each a fenced code block
//! after its path, and search/replace blocks (`<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE`)
//! after their path. Small models drift from either: missing or wrong language tags, the path
//! in bold or backticks or a heading or on the fence line, a fence never closed, marker lines
//! with the wrong number of characters. All of that is accepted here; what cannot be read is a
//! [`ParseProblem`] naming the block, never a panic.

use serde::{Deserialize, Serialize};

/// One edit as the model wrote it, before its path is matched to the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditBlock {
    /// 1-based, in the order the blocks appear in the answer.
    pub number: usize,
    /// The path as written (cleaned of markdown decoration).
    pub path: String,
    /// What the block does to the file.
    pub action: EditAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
/// What one edit block does.
pub enum EditAction {
    /// The file's complete new content.
    WholeFile {
        /// The content, with `\n` line breaks.
        content: String,
    },
    /// Replace the first occurrence of `search` with `replace`; an empty `search` creates a file.
    SearchReplace {
        /// Lines to find, as the model wrote them.
        search: String,
        /// What replaces them.
        replace: String,
    },
    /// Delete the file.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// An edit block (or something like one) that could not be read, and why.
pub struct ParseProblem {
    /// 1-based block number in the answer.
    pub block: usize,
    /// What is wrong with it, in words the model can act on in a second try.
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// Everything read from a model's answer.
pub struct ParsedAnswer {
    /// The usable edit blocks, in the order of the answer.
    pub blocks: Vec<EditBlock>,
    /// Blocks that could not be read.
    pub problems: Vec<ParseProblem>,
}

/// Parses every edit in `answer`. Fenced blocks without markers count as whole files only
/// when `whole_files` is set: in search/replace answers they are usually illustrations.
pub fn parse(answer: &str, whole_files: bool) -> ParsedAnswer {
    let lines: Vec<&str> = answer.lines().collect();
    let mut out = ParsedAnswer::default();
    let mut last_path: Option<String> = None;
    // The closing line of a fence that only wraps search/replace blocks.
    let mut wrapper_close: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if wrapper_close == Some(i) {
            wrapper_close = None;
            i += 1;
        } else if let Some(path) = delete_line(line) {
            push(&mut out, path, EditAction::Delete);
            i += 1;
        } else if marker(line) == Some(Marker::Search) {
            let path = path_before(&lines, i, true).or_else(|| last_path.clone());
            i = search_replace(&lines, i, path, &mut out, &mut last_path);
        } else if let Some(fence) = fence_open(line) {
            let close = (i + 1..lines.len()).find(|&j| fence_closes(lines[j], &fence));
            let end = close.unwrap_or(lines.len());
            let body = &lines[i + 1..end];
            if body.iter().any(|l| marker(l) == Some(Marker::Search)) {
                // Search/replace blocks inside a fence: the fence only wraps them.
                let path = fence.info_path.clone().or_else(|| path_before(&lines, i, false));
                if path.is_some() {
                    last_path = path;
                }
                wrapper_close = close;
                i += 1;
                continue;
            }
            let mut end = end;
            if whole_files {
                let path = fence.info_path.clone().or_else(|| path_before(&lines, i, false));
                // A block whose closing fence was forgotten ends where the next file begins.
                let next_file = path.as_deref().and_then(|p| next_file_header(&lines, i + 1, end, p));
                let (close, body) = match next_file {
                    Some(header) => {
                        end = header - 1;
                        (Some(header), &lines[i + 1..header])
                    }
                    None => (close, body),
                };
                let number = out.blocks.len() + out.problems.len() + 1;
                match (path, close) {
                    (Some(p), Some(_)) => {
                        let mut content = body.join("\n");
                        content.push('\n');
                        push(&mut out, p, EditAction::WholeFile { content: trim_blank_edges(&content) });
                    }
                    (Some(p), None) => out.problems.push(ParseProblem {
                        block: number,
                        reason: format!("the code block for {p} is never closed (the answer was probably cut off), so it is not a whole file"),
                    }),
                    (None, _) => out.problems.push(ParseProblem {
                        block: number,
                        reason: format!("the code block at answer line {} has no file path before it", i + 1),
                    }),
                }
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Watches an answer as it streams and says when the model has started over: a complete
/// edit block identical to an earlier one, or lines it already wrote twice. Small models (Qwen2.5-Coder 0.5B) often repeat a
/// whole-file block until the token limit; everything after the first copy is wasted time.
/// Also ends the answer when a line begins with one of the prompt's own headings, or when it
/// writes the prompt's files back word for word: the model has started to copy the user's
/// message back.
pub struct RepeatWatch {
    text: String,
    whole_files: bool,
    /// Complete blocks seen at the last line break.
    blocks: usize,
    /// Where the last complete line ends in `text`.
    checked: usize,
    prompt_headings: &'static [&'static str],
    shown: Option<ShownFiles>,
}

/// The files as the prompt showed them: the message that holds them, and each one's heading.
struct ShownFiles {
    message: String,
    headings: Vec<String>,
}

impl RepeatWatch {
    /// A watch for whole-file answers (`whole_files`) or search/replace ones, which knows the
    /// prompt's section headings.
    pub fn new(whole_files: bool, prompt_headings: &'static [&'static str]) -> RepeatWatch {
        RepeatWatch { text: String::new(), whole_files, blocks: 0, checked: 0, prompt_headings, shown: None }
    }

    /// Also watches for `message`'s files written back word for word, each file headed in it
    /// by one of `headings` (`path:start-end`, the prompt's form of a heading).
    pub fn watching_copies_of(mut self, message: &str, headings: Vec<String>) -> RepeatWatch {
        self.shown = Some(ShownFiles { message: message.to_string(), headings });
        self
    }

    /// Adds streamed text; false once the answer repeats itself or echoes the prompt.
    pub fn push(&mut self, piece: &str) -> bool {
        self.text.push_str(piece);
        let Some(end) = self.text.rfind('\n') else { return true };
        if end < self.checked {
            return true;
        }
        let new_lines = &self.text[self.checked..end];
        self.checked = end + 1;
        if new_lines.lines().any(|l| self.prompt_headings.iter().any(|h| l.trim_start().starts_with(h))) {
            return false;
        }
        if self.looping() || self.copying_shown_files(new_lines) {
            return false;
        }
        // Blocks only complete at a line break; parse again only when one may have.
        let parsed = parse(&self.text, self.whole_files);
        if parsed.blocks.len() == self.blocks {
            return true;
        }
        self.blocks = parsed.blocks.len();
        let (newest, earlier) = parsed.blocks.split_last().expect("a block was added");
        !earlier.iter().any(|b| b.path == newest.path && b.action == newest.action)
    }

    /// The newest lines were already written twice, word for word: the model is going round
    /// in a loop that never closes a block (it wrote test output as a file, again and again).
    /// Twice, not once: an answer may show a file's unchanged start before its new version.
    fn looping(&self) -> bool {
        const LINES: usize = 16;
        const MIN_CHARS: usize = 400;
        let complete = &self.text[..self.checked];
        let Some(start) = complete.trim_end_matches('\n').rmatch_indices('\n').nth(LINES - 1).map(|(i, _)| i + 1) else {
            return false;
        };
        let window = &complete[start..];
        window.len() >= MIN_CHARS && complete[..start].matches(window).count() >= 2
    }

    /// Since its first heading of a shown file, the answer is the prompt word for word, through
    /// a whole file and into the next one's heading: it gives back unchanged what it was shown,
    /// and small models go on into the test files until the token limit (the 1.5B's agent
    /// fixes, ~1,800 tokens). Nothing written so far is an edit, so nothing is lost. Checked
    /// only when `new_lines` hold a heading.
    fn copying_shown_files(&self, new_lines: &str) -> bool {
        let Some(shown) = &self.shown else { return false };
        let is_heading = |line: &str| shown.headings.iter().any(|h| h == line.trim_end());
        if !new_lines.lines().any(is_heading) {
            return false;
        }
        let complete = &self.text[..self.checked];
        let mut starts = Vec::new();
        let mut offset = 0;
        for line in complete.split_inclusive('\n') {
            if is_heading(line) {
                starts.push(offset);
            }
            offset += line.len();
        }
        starts.len() >= 2 && shown.message.contains(&complete[starts[0]..])
    }
}

fn push(out: &mut ParsedAnswer, path: String, action: EditAction) {
    let number = out.blocks.len() + out.problems.len() + 1;
    out.blocks.push(EditBlock { number, path, action });
}

/// Reads one SEARCH/REPLACE block starting at `start`; returns the line after it.
fn search_replace(
    lines: &[&str],
    start: usize,
    path: Option<String>,
    out: &mut ParsedAnswer,
    last_path: &mut Option<String>,
) -> usize {
    let number = out.blocks.len() + out.problems.len() + 1;
    let divider = (start + 1..lines.len()).find(|&j| marker(lines[j]).is_some());
    let Some(divider) = divider.filter(|&d| marker(lines[d]) == Some(Marker::Divider)) else {
        out.problems.push(ParseProblem { block: number, reason: "a SEARCH section has no ======= line after it".into() });
        return divider.unwrap_or(lines.len());
    };
    let end = (divider + 1..lines.len()).find(|&j| marker(lines[j]).is_some());
    let Some(end) = end.filter(|&e| marker(lines[e]) == Some(Marker::Replace)) else {
        out.problems.push(ParseProblem {
            block: number,
            reason: "a search/replace block is not closed with >>>>>>> REPLACE (the answer was probably cut off)".into(),
        });
        return end.unwrap_or(lines.len());
    };
    let section = |from: usize, to: usize| {
        let mut s = lines[from..to].join("\n");
        if to > from {
            s.push('\n');
        }
        s
    };
    match path {
        Some(p) => {
            *last_path = Some(p.clone());
            let action = EditAction::SearchReplace { search: section(start + 1, divider), replace: section(divider + 1, end) };
            push(out, p, action);
        }
        None => out.problems.push(ParseProblem { block: number, reason: "a search/replace block has no file path before it".into() }),
    }
    end + 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Search,
    Divider,
    Replace,
}

/// `<<<<<<< SEARCH`, `=======`, `>>>>>>> REPLACE`, with 5 to 9 marker characters.
fn marker(line: &str) -> Option<Marker> {
    let t = line.trim();
    let run = |c: char| {
        let n = t.chars().take_while(|&x| x == c).count();
        (5..=9).contains(&n).then(|| t[n..].trim())
    };
    if let Some(rest) = run('<') {
        return rest.eq_ignore_ascii_case("search").then_some(Marker::Search);
    }
    if let Some(rest) = run('=') {
        return rest.is_empty().then_some(Marker::Divider);
    }
    if let Some(rest) = run('>') {
        return rest.eq_ignore_ascii_case("replace").then_some(Marker::Replace);
    }
    None
}

struct Fence {
    ch: char,
    len: usize,
    info_path: Option<String>,
}

fn fence_open(line: &str) -> Option<Fence> {
    let t = line.trim_start();
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|&c| c == ch).count();
    if len < 3 {
        return None;
    }
    let info = t[len..].trim();
    if info.contains('`') {
        return None;
    }
    // `​```python src/app.py`, `​```src/app.py`, `​```python:src/app.py`
    let info_path = info
        .split(|c: char| c.is_whitespace() || c == ':')
        .filter(|w| !w.is_empty())
        .find(|w| looks_like_path(w))
        .map(clean_path);
    Some(Fence { ch, len, info_path })
}

fn fence_closes(line: &str, fence: &Fence) -> bool {
    let t = line.trim();
    t.chars().all(|c| c == fence.ch) && t.len() >= fence.len
}

/// In `lines[from..to]`, a line naming another file than `current` followed by an opening
/// fence with a language tag (```` ```toml ````): the start of the next file's block, in an
/// answer that never closed `current`'s. A closing fence carries no tag.
fn next_file_header(lines: &[&str], from: usize, to: usize, current: &str) -> Option<usize> {
    (from..to).find(|&j| {
        let Some(path) = path_in_line(lines[j]) else { return false };
        let next = (j + 1..to.min(lines.len())).find(|&k| !lines[k].trim().is_empty());
        let tagged = |l: &str| fence_open(l).is_some() && !l.trim().trim_start_matches(['`', '~']).is_empty();
        path != current && next.is_some_and(|k| tagged(lines[k]))
    })
}

/// `DELETE path` (or `Delete file: path`) on a line of its own.
fn delete_line(line: &str) -> Option<String> {
    let t = line.trim().trim_matches('*').trim();
    let lower = t.to_ascii_lowercase();
    let rest = ["delete file:", "delete file", "delete:", "delete"]
        .iter()
        .find_map(|p| {
            let after = t.get(p.len()..)?;
            let whole_word = p.ends_with(':') || after.starts_with(|c: char| c.is_whitespace() || c == ':');
            (lower.starts_with(p) && whole_word).then(|| after.trim_start_matches(':').trim())
        })?;
    let rest = rest.trim_matches(|c| c == '`' || c == '*' || c == '"');
    (!rest.contains(' ') && looks_like_path(rest)).then(|| clean_path(rest))
}

/// The path written just above line `at`: the nearest non-blank line within two lines,
/// skipping fence lines when `skip_fences` (a SEARCH marker right after ```` ```lang ````).
fn path_before(lines: &[&str], at: usize, skip_fences: bool) -> Option<String> {
    let mut seen = 0;
    for j in (0..at).rev() {
        let l = lines[j].trim();
        if l.is_empty() {
            continue;
        }
        if skip_fences {
            if let Some(f) = fence_open(l) {
                if let Some(p) = f.info_path {
                    return Some(p);
                }
                continue;
            }
        }
        if marker(l) == Some(Marker::Replace) {
            return None;
        }
        if let Some(p) = path_in_line(l) {
            return Some(p);
        }
        seen += 1;
        if seen >= 2 {
            return None;
        }
    }
    None
}

/// A path on a line by itself, possibly decorated: `**src/a.rs**`, `` `src/a.rs`: ``,
/// `### File: src/a.rs`, `src/a.rs (updated)`.
fn path_in_line(line: &str) -> Option<String> {
    let mut t = line.trim().trim_start_matches('#').trim();
    for prefix in ["file:", "filename:", "path:", "in ", "update ", "create ", "new file:", "modified:"] {
        if t.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
            t = t[prefix.len()..].trim();
        }
    }
    let word = t.split_whitespace().next()?;
    let cleaned = clean_path(word);
    let rest_is_note = t.split_whitespace().count() == 1 || t[word.len()..].trim_start().starts_with('(');
    (rest_is_note && looks_like_path(&cleaned)).then_some(cleaned)
}

fn clean_path(p: &str) -> String {
    let p = p
        .trim()
        .trim_matches(|c| matches!(c, '`' | '*' | '"' | '\'' | '_'))
        .trim_end_matches(':')
        .trim_matches(|c| matches!(c, '`' | '*' | '"' | '\''));
    // The prompt heads excerpts `path:start-end`; small models copy the range into the path.
    without_line_range(p).unwrap_or(p).replace('\\', "/")
}

/// `src/a.rs` for `src/a.rs:1-16` or `src/a.rs:7`; `None` when there is no line range.
fn without_line_range(p: &str) -> Option<&str> {
    let (path, range) = p.rsplit_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_range = match range.split_once('-') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(range),
    };
    (is_range && !path.is_empty()).then_some(path)
}

fn looks_like_path(p: &str) -> bool {
    let p = clean_path(p);
    !p.is_empty()
        && p.len() < 260
        && !p.contains(char::is_whitespace)
        && (p.contains('/') || p.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric())))
        && p.chars().all(|c| c.is_alphanumeric() || "/._-+@~$".contains(c))
}

/// Blank lines a model adds around a file's content are not part of it.
fn trim_blank_edges(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(f), Some(l)) => lines[f..=l].join("\n") + "\n",
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(answer: &str) -> ParsedAnswer {
        parse(answer, true)
    }

    #[test]
    fn whole_file_with_decorated_paths_and_no_language_tag() {
        for header in ["src/app.py", "**src/app.py**", "`src/app.py`:", "### File: src/app.py", "src/app.py (updated)", "src/app.py:1-16", "`src/app.py:3`"] {
            let a = whole(&format!("Here you go.\n\n{header}\n```\n\ndef f():\n    return 1\n\n```\nDone."));
            assert_eq!(a.problems, vec![], "{header}");
            assert_eq!(a.blocks.len(), 1, "{header}");
            assert_eq!(a.blocks[0].path, "src/app.py");
            assert_eq!(a.blocks[0].action, EditAction::WholeFile { content: "def f():\n    return 1\n".into() });
        }
    }

    #[test]
    fn a_repeated_block_is_noticed_when_it_closes() {
        let block = "initials.js\n```js\nexport const f = () => 1;\n```\n\n";
        let mut watch = RepeatWatch::new(true, &[]);
        assert!(watch.push(block), "the first copy is the answer");
        let second = format!("{block}{block}");
        let mut watch = RepeatWatch::new(true, &[]);
        let verdicts: Vec<bool> = second.split_inclusive('\n').map(|line| watch.push(line)).collect();
        assert_eq!(verdicts.iter().filter(|v| !**v).count(), 1, "{verdicts:?}");
        assert!(!verdicts[verdicts.len() - 2], "stops at the repeat's closing fence: {verdicts:?}");
        // Another file, or the same file with other content, is not a repeat.
        let mut watch = RepeatWatch::new(true, &[]);
        assert!(watch.push("a.js\n```js\nx\n```\nb.js\n```js\nx\n```\na.js\n```js\ny\n```\n"));
    }

    #[test]
    fn a_loop_that_never_closes_a_block_ends_at_its_third_round() {
        let round: String = (0..20).map(|i| format!("    > {i} |   expect(encode('yes', {{ a: 5, b: 7 }})).toBe('xbt');\n")).collect();
        let answer = format!("spec.js\n```js\n{round}{round}{round}{round}");
        let mut watch = RepeatWatch::new(true, &[]);
        let stopped_at = answer.split_inclusive('\n').position(|line| !watch.push(line)).expect("the loop is noticed");
        assert!((2 + 2 * 20..2 + 3 * 20).contains(&stopped_at), "in the third round: line {stopped_at}");
        // A file shown once unchanged and then changed is not a loop.
        let file: String = (0..30).map(|i| format!("let value_number_{i} = compute_something_long({i});\n")).collect();
        let answer = format!("a.js\n```js\n{file}```\n\na.js\n```js\n{file}// changed\n```\n");
        let mut watch = RepeatWatch::new(true, &[]);
        assert!(answer.split_inclusive('\n').all(|line| watch.push(line)));
    }

    #[test]
    fn an_echo_of_the_prompt_ends_the_answer() {
        let mut watch = RepeatWatch::new(true, &["Change requested:"]);
        assert!(watch.push("a.js\n```js\nx\n```\n\nChange req"));
        assert!(!watch.push("uested: make it work\n"));
    }

    #[test]
    fn the_shown_files_written_back_word_for_word_end_at_the_next_files_heading() {
        let a = "a.js:1-2\n```js\nlet a = 1;\nlet b = 2;\n```\n";
        let t = "a.spec.js:1-1\n```js\ntest('a', () => expect(a).toBe(2));\n```\n";
        let message = format!("Project files:\n\n{a}\n{t}\nChange requested: fix a.js\n\nAnswer with …");
        let watch = || RepeatWatch::new(true, &[]).watching_copies_of(&message, vec!["a.js:1-2".into(), "a.spec.js:1-1".into()]);
        let copy = format!("{a}\n{t}");
        let mut w = watch();
        let stopped_at = copy.split_inclusive('\n').position(|line| !w.push(line));
        assert_eq!(stopped_at, Some(6), "at the test file's heading");
        // What was written up to there reads as the first file given back unchanged.
        let answer: String = copy.split_inclusive('\n').take(7).collect();
        let parsed = whole(&answer);
        assert_eq!((parsed.blocks.len(), parsed.problems.len()), (1, 0), "{parsed:?}");

        // A changed file, the answer's own headings, or one file alone go on.
        let changed = format!("{}\n{t}", a.replace("= 1", "= 2"));
        let own_headings = format!("a.js\n{}\na.spec.js\n{}", &a[9..], &t[14..]);
        for answer in [changed, own_headings, a.to_string()] {
            let mut w = watch();
            assert!(answer.split_inclusive('\n').all(|line| w.push(line)), "{answer}");
        }
    }

    #[test]
    fn a_block_left_open_ends_where_the_next_file_begins() {
        // Qwen2.5-Coder-0.5B on a Rust exercise: the code block is never closed.
        let a = whole("src/lib.rs:1-4\n```rs\npub fn map() {}\n\nCargo.toml:1-4\n```toml\n[package]\nname = \"a\"\n```\n");
        assert_eq!(a.problems, vec![]);
        assert_eq!(a.blocks.len(), 2, "{a:?}");
        assert_eq!((a.blocks[0].path.as_str(), &a.blocks[0].action), ("src/lib.rs", &EditAction::WholeFile { content: "pub fn map() {}\n".into() }));
        assert_eq!(a.blocks[1].path, "Cargo.toml");
        // A path-like line inside a file followed by an untagged fence is content, not a header.
        let a = whole("README.md\n```md\nSee:\nsrc/lib.rs\n```\n");
        assert_eq!(a.blocks.len(), 1);
    }

    #[test]
    fn path_on_the_fence_line() {
        let a = whole("```python src/app.py\nx = 1\n```\n");
        assert_eq!(a.blocks[0].path, "src/app.py");
        let a = whole("~~~~rust:src/lib.rs\nfn a() {}\n~~~~\n");
        assert_eq!(a.blocks[0].path, "src/lib.rs");
    }

    #[test]
    fn unclosed_whole_file_is_a_problem_not_an_edit() {
        let a = whole("src/app.py\n```python\ndef f():\n");
        assert!(a.blocks.is_empty());
        assert!(a.problems[0].reason.contains("never closed"), "{:?}", a.problems);
    }

    #[test]
    fn code_block_without_a_path_is_reported() {
        let a = whole("Try this:\n\n```python\nx = 1\n```\n");
        assert!(a.blocks.is_empty());
        assert!(a.problems[0].reason.contains("no file path"), "{:?}", a.problems);
    }

    #[test]
    fn search_replace_in_and_out_of_fences_with_sloppy_markers() {
        let a = parse(
            "src/a.rs\n```rust\n<<<<<<< SEARCH\nfn a() {}\n=======\nfn a() { 1 }\n>>>>>>> REPLACE\n\n<<<<<<<< search\nfn b() {}\n========\n>>>>>>>>> replace\n```\n\nsrc/c.rs\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n",
            false,
        );
        assert_eq!(a.problems, vec![]);
        let paths: Vec<_> = a.blocks.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(paths, ["src/a.rs", "src/a.rs", "src/c.rs"]);
        assert_eq!(a.blocks[1].action, EditAction::SearchReplace { search: "fn b() {}\n".into(), replace: "".into() });
        assert_eq!(a.blocks[2].action, EditAction::SearchReplace { search: "".into(), replace: "new\n".into() });
    }

    #[test]
    fn whole_file_after_a_fenced_search_replace() {
        let a = whole("a.py\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n\nb.py\n```python\nz = 1\n```\n");
        assert_eq!(a.problems, vec![]);
        assert_eq!(a.blocks.len(), 2);
        assert_eq!(a.blocks[1].path, "b.py");
        assert_eq!(a.blocks[1].action, EditAction::WholeFile { content: "z = 1\n".into() });
    }

    #[test]
    fn cut_off_search_replace_is_reported() {
        let a = parse("src/a.rs\n<<<<<<< SEARCH\nfn a() {}\n=======\nfn a() { 1 }\n", false);
        assert!(a.blocks.is_empty());
        assert!(a.problems[0].reason.contains("not closed"));
    }

    #[test]
    fn delete_lines() {
        let a = whole("DELETE old/unused.py\n**Delete file: `x/y.rs`**\n");
        assert_eq!(a.blocks.iter().map(|b| (&b.path[..], &b.action)).collect::<Vec<_>>(), [
            ("old/unused.py", &EditAction::Delete),
            ("x/y.rs", &EditAction::Delete)
        ]);
    }

    #[test]
    fn prose_is_not_an_edit() {
        let a = whole("I cannot help with that. The function is in main.rs and works.\ndeleted.py\nDelete the old code.\n");
        assert_eq!(a, ParsedAnswer::default());
        assert_eq!(parse("```\nexample\n```", false), ParsedAnswer::default());
    }

    #[test]
    fn markdown_file_content_with_inner_tagged_fences() {
        let a = whole("README.md\n````markdown\n# T\n```sh\nmake\n```\n````\n");
        assert_eq!(a.blocks[0].action, EditAction::WholeFile { content: "# T\n```sh\nmake\n```\n".into() });
    }
}
