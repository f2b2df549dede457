//! Splitting a file into chunks that follow its structure.
//!
//! A chunk starts where a top-level definition starts (a function, class, impl, type…),
//! together with the comments and attributes just above it. Small neighbours are merged up to
//! `TARGET_LINES`; a definition longer than `MAX_LINES` is cut into overlapping windows. Files
//! with no recognisable structure fall back to plain line windows. Line-based on purpose: it
//! works the same for every language, with no parser to build or to fail.

/// A chunk grows by merging neighbours until it has about this many lines.
pub const TARGET_LINES: usize = 40;
/// Longer chunks are cut into windows of this size…
pub const MAX_LINES: usize = 80;
/// …that overlap by this much, so nothing is lost at a cut.
const OVERLAP: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A piece of a file small enough to put in a prompt, cut at definitions where it can be.
pub struct Chunk {
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    /// The chunk's lines.
    pub text: String,
    /// Names defined in this chunk.
    pub symbols: Vec<String>,
}

/// Keywords that open a definition, after visibility and modifiers.
const DEFINERS: &[&str] = &[
    "fn", "struct", "enum", "trait", "impl", "mod", "macro_rules!", "union", "type", "class", "def", "func",
    "function", "interface", "namespace", "module", "object", "record", "protocol", "extension",
];
const MODIFIERS: &[&str] = &[
    "pub", "pub(crate)", "pub(super)", "async", "unsafe", "const", "static", "export", "default", "abstract", "final",
    "public", "private", "protected", "internal", "open", "override", "extern", "declare", "inline", "virtual",
];

/// The name defined on `line`, if it opens a definition.
pub fn definition_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let mut words = t.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()).peekable();
    let mut saw_modifier = false;
    while let Some(w) = words.peek() {
        if MODIFIERS.contains(w) || w.starts_with("pub(") || w.starts_with("extern\"") {
            saw_modifier = true;
            words.next();
        } else {
            break;
        }
    }
    let first = words.next()?;
    let keyword = DEFINERS.iter().find(|k| first == **k || (first.starts_with(*k) && first[k.len()..].starts_with('<')));
    let name_src = if keyword.is_some() {
        // Go methods: `func (r *Recv) Name(`.
        let rest: String = words.collect::<Vec<_>>().join(" ");
        if first == "func" && rest.starts_with('(') {
            rest.split_once(')').map(|(_, r)| r.trim_start().to_string()).unwrap_or_default()
        } else if first.starts_with("impl") {
            // `impl<T> Trait for Type<T>` names the type.
            let target = rest.rsplit_once(" for ").map_or(rest.as_str(), |(_, t)| t);
            target.to_string()
        } else {
            rest
        }
    } else if saw_modifier && (first == "let" || first == "var") {
        words.collect::<Vec<_>>().join(" ")
    } else if saw_modifier && t.starts_with("export const ") {
        t["export const ".len()..].to_string()
    } else {
        return None;
    };
    let name: String = name_src
        .trim_start_matches(['<', '&', '*'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        .collect();
    (!name.is_empty() && name != "for").then_some(name)
}

fn indent(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

fn is_preamble(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("///") || t.starts_with("//") || t.starts_with("#[") || t.starts_with("/*") || t.starts_with('*')
        || t.starts_with('@') || t.starts_with('#') && !t.starts_with("#!") && !t.starts_with("#include")
}

/// Splits `text` into chunks.
pub fn chunk(text: &str) -> Vec<Chunk> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return Vec::new();
    }
    // Definition starts at the outer two levels of indentation (items, and methods in a class
    // or impl), moved up over their doc comments and attributes.
    let mut starts = vec![0usize];
    for (i, line) in lines.iter().enumerate() {
        if indent(line) <= 4 && definition_name(line).is_some() {
            let mut s = i;
            while s > 0 && is_preamble(lines[s - 1]) && indent(lines[s - 1]) <= 4 {
                s -= 1;
            }
            if s > *starts.last().unwrap() {
                starts.push(s);
            }
        }
    }
    starts.push(lines.len());

    // Merge small neighbours up to the target size.
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for w in starts.windows(2) {
        let (s, e) = (w[0], w[1]);
        match segments.last_mut() {
            Some(last) if last.1 - last.0 < TARGET_LINES && e - last.0 <= MAX_LINES => last.1 = e,
            _ => segments.push((s, e)),
        }
    }

    let mut out = Vec::new();
    for (s, e) in segments {
        let mut start = s;
        loop {
            let end = if e - start > MAX_LINES { start + MAX_LINES } else { e };
            let body = &lines[start..end];
            if body.iter().any(|l| !l.trim().is_empty()) {
                let symbols = body
                    .iter()
                    .filter(|l| indent(l) <= 4)
                    .filter_map(|l| definition_name(l))
                    .collect();
                out.push(Chunk { start_line: start + 1, end_line: end, text: body.join("\n"), symbols });
            }
            if end >= e {
                break;
            }
            start = end - OVERLAP;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_named() {
        for (line, name) in [
            ("pub fn parse_header(x: &str) {", Some("parse_header")),
            ("    pub(crate) async fn run<T>(", Some("run")),
            ("impl<T> Display for Wrapper<T> {", Some("Wrapper")),
            ("impl Engine {", Some("Engine")),
            ("class HttpServer(Base):", Some("HttpServer")),
            ("    def handle(self, req):", Some("handle")),
            ("async def main():", Some("main")),
            ("func (c *Context) JSON(code int, obj any) {", Some("JSON")),
            ("func New() *Engine {", Some("New")),
            ("export function createServer(config) {", Some("createServer")),
            ("export const resolvePlugin = (", Some("resolvePlugin")),
            ("export interface UserConfig {", Some("UserConfig")),
            ("let x = 5;", None),
            ("    return fn(x)", None),
            ("for x in y {", None),
        ] {
            assert_eq!(definition_name(line).as_deref(), name, "{line}");
        }
    }

    #[test]
    fn chunks_follow_definitions_and_cover_the_file() {
        let mut src = String::new();
        for i in 0..6 {
            src += &format!("/// Doc for f{i}.\nfn f{i}() {{\n");
            for j in 0..30 {
                src += &format!("    let v{j} = {j};\n");
            }
            src += "}\n\n";
        }
        let chunks = chunk(&src);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        // Each chunk starts at a doc comment, and they cover every line in order.
        let mut next = 1;
        for c in &chunks {
            assert!(c.start_line <= next, "gap before {}", c.start_line);
            assert!(c.text.starts_with("/// Doc for f"), "{}", &c.text[..20]);
            assert!(c.end_line - c.start_line < MAX_LINES);
            next = c.end_line + 1;
        }
        assert!(next > src.lines().count());
        assert!(chunks[0].symbols.contains(&"f0".to_string()));
    }

    #[test]
    fn long_unstructured_text_falls_back_to_overlapping_windows() {
        let src: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let chunks = chunk(&src);
        assert_eq!(chunks[0].start_line, 1);
        assert_eq!(chunks[0].end_line, MAX_LINES);
        assert_eq!(chunks[1].start_line, MAX_LINES - OVERLAP + 1);
        assert_eq!(chunks.last().unwrap().end_line, 200);
    }
}
