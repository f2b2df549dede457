//! Go does not build a file that imports a package it does not use, or uses a package it does
//! not import, and models get imports wrong often: in the edit benchmark's Go exercises, the
//! only error of many answers was a missing `fmt` or an unused `strings`. What `goimports`
//! does on save in Go editors, for the standard library: a Go file the answer changed gets
//! the standard-library imports its code uses and loses those it does not use. Other imports
//! stay as written (a module path does not say its package's name), and so does a file whose
//! import layout this does not read with certainty (then nothing is changed).

/// Package name -> import path, for the standard-library packages a file may use without
/// importing them. Where two paths share a name (`math/rand`, `crypto/rand`) the common one.
const STANDARD_PACKAGES: &[(&str, &str)] = &[
    ("atomic", "sync/atomic"),
    ("base64", "encoding/base64"),
    ("big", "math/big"),
    ("binary", "encoding/binary"),
    ("bits", "math/bits"),
    ("bufio", "bufio"),
    ("bytes", "bytes"),
    ("cmp", "cmp"),
    ("cmplx", "math/cmplx"),
    ("context", "context"),
    ("csv", "encoding/csv"),
    ("errors", "errors"),
    ("filepath", "path/filepath"),
    ("fmt", "fmt"),
    ("heap", "container/heap"),
    ("hex", "encoding/hex"),
    ("io", "io"),
    ("json", "encoding/json"),
    ("list", "container/list"),
    ("maps", "maps"),
    ("math", "math"),
    ("os", "os"),
    ("rand", "math/rand"),
    ("reflect", "reflect"),
    ("regexp", "regexp"),
    ("ring", "container/ring"),
    ("slices", "slices"),
    ("sort", "sort"),
    ("strconv", "strconv"),
    ("strings", "strings"),
    ("sync", "sync"),
    ("time", "time"),
    ("unicode", "unicode"),
    ("utf8", "unicode/utf8"),
];

/// A Go file with its standard-library imports made to match its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tidied {
    /// The file's new text.
    pub text: String,
    /// Import paths added, in the order written.
    pub added: Vec<String>,
    /// Import paths removed.
    pub removed: Vec<String>,
}

impl Tidied {
    /// What was done, in words, for the proposal's notes.
    pub fn describe(&self) -> String {
        let quoted = |paths: &[String]| paths.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added the import of {} (used, not imported)", quoted(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed the import of {} (imported, not used)", quoted(&self.removed)));
        }
        format!("Go imports: {} — Go does not build otherwise", parts.join("; "))
    }
}

/// `source` (a Go file, `\n` line breaks) with its standard-library imports made to match its
/// code; `None` when they already match or the file's imports cannot be read with certainty.
/// `package_files`: the other files of its package, whose declarations it can use: a name that
/// appears in them without a selector (a declaration such as `var list = …`, but also any other
/// plain use, which errs towards adding nothing) is not taken for a package whose import is missing.
pub fn tidy(source: &str, package_files: &[&str]) -> Option<Tidied> {
    let tokens = lex(source)?;
    let file = read_imports(&tokens)?;
    let mut uses = Uses::of(&tokens[file.body_start..]);
    for other in package_files {
        if let Some(other) = lex(other) {
            uses.plain.extend(Uses::of(&other).plain);
        }
    }

    let removed: Vec<&Spec> = file.specs.iter().filter(|s| s.removable() && !uses.selected.contains(&s.name)).collect();
    let mut added: Vec<&str> = STANDARD_PACKAGES
        .iter()
        .filter(|(name, _)| {
            uses.exported.iter().any(|q| q == name)
                && !file.specs.iter().any(|s| s.name == *name)
                && !uses.plain.iter().any(|p| p == name)
        })
        .map(|(_, path)| *path)
        .collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    added.sort_unstable();

    let lines: Vec<&str> = source.split('\n').collect();
    let blank = |l: usize| lines.get(l).is_some_and(|t| t.trim().is_empty());
    let mut drop: Vec<usize> = removed.iter().map(|s| s.line).collect();
    // An emptied declaration goes whole, with the blank line after it when one precedes it.
    let drop_with_blank = |first: usize, last: usize, drop: &mut Vec<usize>| {
        drop.extend(first..=last);
        if first > 0 && blank(first - 1) && blank(last + 1) {
            drop.push(last + 1);
        }
    };
    for (i, block) in file.blocks.iter().enumerate() {
        let emptied = file.specs.iter().filter(|s| s.block == Some(block.open)).all(|s| drop.contains(&s.line));
        if emptied && (added.is_empty() || i > 0) {
            drop_with_blank(block.open, block.close, &mut drop);
        }
    }
    let singles: Vec<usize> = file.specs.iter().filter(|s| s.block.is_none()).map(|s| s.line).collect();
    if file.blocks.is_empty() && added.is_empty() && singles.iter().all(|l| drop.contains(l)) {
        if let (Some(&first), Some(&last)) = (singles.iter().min(), singles.iter().max()) {
            drop_with_blank(first, last, &mut drop);
        }
    }

    let mut inserts = insertions(&file, &lines, &drop, &added);
    inserts.sort_by_key(|(before, _)| *before);
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + inserts.len());
    let mut pending = inserts.iter().peekable();
    for (i, line) in lines.iter().enumerate() {
        while let Some((_, l)) = pending.next_if(|(before, _)| *before == i) {
            out.push(l);
        }
        if !drop.contains(&i) {
            out.push(line);
        }
    }
    out.extend(pending.map(|(_, l)| l.as_str()));
    Some(Tidied {
        text: out.join("\n"),
        added: added.iter().map(|p| p.to_string()).collect(),
        removed: removed.iter().map(|s| s.path.clone()).collect(),
    })
}

/// The lines to add, each with the line of `lines` it goes before: into the first
/// `import ( … )` block's first group (the standard library's, by convention) in sorted
/// order; else as declarations after the last single import; else after the package clause.
fn insertions(file: &ImportDecls, lines: &[&str], dropped: &[usize], added: &[&str]) -> Vec<(usize, String)> {
    if added.is_empty() {
        return Vec::new();
    }
    if let Some(block) = file.blocks.first() {
        let group: Vec<&Spec> = file
            .specs
            .iter()
            .filter(|s| s.block == Some(block.open))
            .take_while(|s| !(block.open + 1..s.line).any(|l| lines[l].trim().is_empty()))
            .filter(|s| !dropped.contains(&s.line))
            .collect();
        let indent = group.first().map_or("\t", |s| &lines[s.line][..lines[s.line].len() - lines[s.line].trim_start().len()]);
        return added
            .iter()
            .map(|path| {
                let before = match group.iter().find(|s| s.path.as_str() > *path) {
                    Some(s) => s.line,
                    None => group.last().map_or(block.open + 1, |s| s.line + 1),
                };
                (before, format!("{indent}\"{path}\""))
            })
            .collect();
    }
    let declarations = || -> Vec<String> {
        match added {
            [one] => vec![format!("import \"{one}\"")],
            many => {
                let mut l = vec!["import (".to_string()];
                l.extend(many.iter().map(|p| format!("\t\"{p}\"")));
                l.push(")".to_string());
                l
            }
        }
    };
    if let Some(last) = file.specs.iter().map(|s| s.line).max() {
        return declarations().into_iter().map(|l| (last + 1, l)).collect();
    }
    let after_package = file.package_line + 1;
    let mut new = vec![String::new()];
    new.extend(declarations());
    if lines.get(after_package).is_some_and(|l| !l.trim().is_empty()) {
        new.push(String::new());
    }
    new.into_iter().map(|l| (after_package, l)).collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An identifier or keyword.
    Ident(String, usize),
    /// A string literal's value (escapes as written).
    Str(String, usize),
    /// Any other punctuation character (numbers and rune literals are skipped).
    Punct(char, usize),
}

impl Token {
    fn line(&self) -> usize {
        match self {
            Token::Ident(_, l) | Token::Str(_, l) | Token::Punct(_, l) => *l,
        }
    }

    fn ident(&self) -> Option<&str> {
        match self {
            Token::Ident(t, _) => Some(t),
            _ => None,
        }
    }
}

/// The file's tokens, without comments, each with its line (0-based); `None` for an
/// unterminated string, rune or comment.
fn lex(src: &str) -> Option<Vec<Token>> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 0);
    // The end of a quoted literal starting at `i` (its closing quote), escapes skipped.
    let quoted_end = |mut i: usize, quote: u8| -> Option<usize> {
        i += 1;
        while *b.get(i)? != quote {
            if b[i] == b'\n' {
                return None;
            }
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        Some(i)
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/")? + i + 2;
                line += src[i..end].matches('\n').count();
                i = end + 2;
            }
            b'"' => {
                let end = quoted_end(i, b'"')?;
                tokens.push(Token::Str(src[i + 1..end].to_string(), line));
                i = end + 1;
            }
            b'\'' => i = quoted_end(i, b'\'')? + 1,
            b'`' => {
                let end = src[i + 1..].find('`')? + i + 1;
                tokens.push(Token::Str(src[i + 1..end].to_string(), line));
                line += src[i..end].matches('\n').count();
                i = end + 1;
            }
            b'0'..=b'9' => {
                // A number with its fraction and exponent: its `.` is not a selector.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    let exponent = matches!(b[i], b'e' | b'E' | b'p' | b'P');
                    i += 1;
                    if exponent && matches!(b.get(i), Some(b'+' | b'-')) {
                        i += 1;
                    }
                }
            }
            _ if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || b[i] >= 0x80) {
                    i += 1;
                }
                tokens.push(Token::Ident(src[start..i].to_string(), line));
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                tokens.push(Token::Punct(c as char, line));
                i += 1;
            }
        }
    }
    Some(tokens)
}

/// One import spec, on a line of its own.
#[derive(Debug)]
struct Spec {
    /// The name the file uses it by: its alias, or the path's package name.
    name: String,
    /// Written with an alias (`_`, `.` or a name).
    aliased: bool,
    path: String,
    /// Its line (0-based).
    line: usize,
    /// The opening line of its `import ( … )` block; `None` for `import "x"`.
    block: Option<usize>,
}

impl Spec {
    /// Only a standard-library import without an alias (its name is certain) is removed when
    /// unused, and never cgo's `"C"`.
    fn removable(&self) -> bool {
        let first = self.path.split('/').next().unwrap_or("");
        !self.aliased && !first.contains('.') && self.path != "C"
    }
}

/// The lines of an `import ( … )` block's parentheses.
struct Block {
    open: usize,
    close: usize,
}

struct ImportDecls {
    package_line: usize,
    specs: Vec<Spec>,
    blocks: Vec<Block>,
    /// The first token after the import declarations.
    body_start: usize,
}

/// The package clause and the import declarations; `None` unless every spec has a line of its
/// own (and a single-line declaration nothing else on its line), so that lines can be removed.
fn read_imports(tokens: &[Token]) -> Option<ImportDecls> {
    if tokens.first()?.ident() != Some("package") {
        return None;
    }
    let package_line = tokens.get(1).filter(|t| t.ident().is_some())?.line();
    let (mut specs, mut blocks): (Vec<Spec>, Vec<Block>) = (Vec::new(), Vec::new());
    let skip_semicolons = |mut i: usize| {
        while matches!(tokens.get(i), Some(Token::Punct(';', _))) {
            i += 1;
        }
        i
    };
    let mut i = skip_semicolons(2);
    while tokens.get(i).and_then(Token::ident) == Some("import") {
        let import_line = tokens[i].line();
        i += 1;
        if let Some(Token::Punct('(', open)) = tokens.get(i) {
            let open = *open;
            i = skip_semicolons(i + 1);
            while !matches!(tokens.get(i)?, Token::Punct(')', _)) {
                let (spec, next) = read_spec(tokens, i, Some(open))?;
                if spec.line == open || specs.iter().any(|s| s.line == spec.line) {
                    return None;
                }
                specs.push(spec);
                i = skip_semicolons(next);
            }
            let close = tokens[i].line();
            if close == open || specs.last().is_some_and(|s| s.block == Some(open) && s.line == close) {
                return None;
            }
            blocks.push(Block { open, close });
            i += 1;
        } else {
            let (spec, next) = read_spec(tokens, i, None)?;
            let alone = spec.line == import_line && tokens.get(next).is_none_or(|t| t.line() > import_line);
            if !alone {
                return None;
            }
            specs.push(spec);
            i = next;
        }
        i = skip_semicolons(i);
    }
    Some(ImportDecls { package_line, specs, blocks, body_start: i })
}

/// The spec at `tokens[i]` (`[name | _ | .] "path"`, on one line) and the index after it.
fn read_spec(tokens: &[Token], i: usize, block: Option<usize>) -> Option<(Spec, usize)> {
    let (alias, at) = match tokens.get(i)? {
        Token::Ident(name, _) => (Some(name.clone()), i + 1),
        Token::Punct('.', _) => (Some(".".to_string()), i + 1),
        _ => (None, i),
    };
    let Token::Str(path, line) = tokens.get(at)? else { return None };
    if tokens[i].line() != *line {
        return None;
    }
    let name = alias.clone().unwrap_or_else(|| package_name(path).to_string());
    Some((Spec { name, aliased: alias.is_some(), path: path.clone(), line: *line, block }, at + 1))
}

/// The name a standard-library path is used by: its last element (`math/rand/v2` -> `rand`).
fn package_name(path: &str) -> &str {
    let mut parts = path.rsplit('/');
    let last = parts.next().unwrap_or(path);
    let version = last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    match (version, parts.next()) {
        (true, Some(before)) => before,
        _ => last,
    }
}

/// How the code after the imports uses names.
struct Uses {
    /// `x` of every selector `x.y` whose `x` is not itself selected (`a.x.y`).
    selected: Vec<String>,
    /// …of those whose `y` is exported (`fmt.Println`): what a package use looks like.
    exported: Vec<String>,
    /// Names that also appear without a selector: variables, parameters, types… such a name
    /// is not taken for a package whose import is missing.
    plain: Vec<String>,
}

impl Uses {
    fn of(tokens: &[Token]) -> Uses {
        let mut uses = Uses { selected: Vec::new(), exported: Vec::new(), plain: Vec::new() };
        for (j, t) in tokens.iter().enumerate() {
            let Some(name) = t.ident() else { continue };
            if j > 0 && tokens[j - 1] == Token::Punct('.', tokens[j - 1].line()) {
                continue;
            }
            let selector = match (tokens.get(j + 1), tokens.get(j + 2)) {
                (Some(Token::Punct('.', _)), Some(Token::Ident(y, _))) => Some(y),
                _ => None,
            };
            let list = match selector {
                Some(y) => {
                    if y.starts_with(|c: char| c.is_ascii_uppercase()) {
                        uses.exported.push(name.to_string());
                    }
                    &mut uses.selected
                }
                None => &mut uses.plain,
            };
            list.push(name.to_string());
        }
        uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tidy(src: &str) -> Option<Tidied> {
        super::tidy(src, &[])
    }

    fn tidied(src: &str) -> String {
        tidy(src).map(|t| t.text).unwrap_or_else(|| src.to_string())
    }

    #[test]
    fn a_missing_import_goes_into_the_block_in_order_and_an_unused_one_goes() {
        let src = "package bottlesong\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc Verse(n int) string {\n\treturn strconv.Itoa(n) + fmt.Sprint(n)\n}\n";
        let t = tidy(src).unwrap();
        assert_eq!(t.added, vec!["strconv"]);
        assert_eq!(t.removed, vec!["strings"]);
        assert_eq!(
            t.text,
            "package bottlesong\n\nimport (\n\t\"fmt\"\n\t\"strconv\"\n)\n\nfunc Verse(n int) string {\n\treturn strconv.Itoa(n) + fmt.Sprint(n)\n}\n"
        );
        assert!(t.describe().contains("added the import of \"strconv\""), "{}", t.describe());
    }

    #[test]
    fn a_file_without_imports_gets_a_declaration_after_the_package_clause() {
        let src = "package bottlesong\n\nfunc Verse(n int) string {\n\treturn fmt.Sprintf(\"%d\", n)\n}\n";
        assert_eq!(
            tidied(src),
            "package bottlesong\n\nimport \"fmt\"\n\nfunc Verse(n int) string {\n\treturn fmt.Sprintf(\"%d\", n)\n}\n"
        );
        let two = "package p\nfunc F() { fmt.Println(strings.ToUpper(\"a\")) }";
        assert_eq!(tidied(two), "package p\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc F() { fmt.Println(strings.ToUpper(\"a\")) }");
    }

    #[test]
    fn the_only_imports_unused_leave_no_empty_declaration_or_double_blank_line() {
        let block = "package counter\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\ntype Counter struct{}\n";
        assert_eq!(tidied(block), "package counter\n\ntype Counter struct{}\n");
        let single = "package counter\n\nimport \"fmt\"\n\ntype Counter struct{}\n";
        assert_eq!(tidied(single), "package counter\n\ntype Counter struct{}\n");
        let t = tidy(block).unwrap();
        assert_eq!((t.added.len(), t.removed), (0, vec!["fmt".to_string(), "strings".to_string()]));
    }

    #[test]
    fn single_line_imports_get_a_new_declaration_after_them() {
        let src = "package p\n\nimport \"strings\"\n\nfunc F() []string { sort.Strings(nil); return strings.Fields(\"\") }\n";
        assert_eq!(
            tidied(src),
            "package p\n\nimport \"strings\"\nimport \"sort\"\n\nfunc F() []string { sort.Strings(nil); return strings.Fields(\"\") }\n"
        );
    }

    #[test]
    fn names_that_are_not_packages_are_left_alone() {
        // A variable, a parameter and a field named like packages; selectors in strings,
        // comments and after numbers; a lowercase selector.
        let src = "package p\n\nimport \"fmt\"\n\n// strings.Join is not code\nfunc F(sort []int, c cfg) float64 {\n\ttime := c.time\n\t_ = sort\n\t_ = time.Hour\n\tfmt.Println(\"math.Pi\", `bytes.Buffer`, '.')\n\treturn 1.5e-3 + c.math.Abs + errs.x\n}\n";
        assert_eq!(tidy(src), None);
    }

    #[test]
    fn a_name_another_file_of_the_package_declares_is_not_a_missing_import() {
        let src = "package p\n\nfunc F() int { return list.Len() }\n";
        assert_eq!(tidy(src).unwrap().added, vec!["container/list"]);
        let other = "package p\n\nimport \"container/list\"\n\nvar list = list.New()\n";
        assert_eq!(super::tidy(src, &[other]), None);
    }

    #[test]
    fn aliased_blank_dot_cgo_and_module_imports_are_kept() {
        let src = "package p\n\nimport (\n\tstr \"strings\"\n\t_ \"embed\"\n\t. \"math\"\n\t\"C\"\n\t\"example.com/mod/pkg\"\n)\n\nfunc F() {}\n";
        assert_eq!(tidy(src), None);
        // …and a used alias counts as the package: no second import of "strings".
        let used = "package p\n\nimport str \"strings\"\n\nfunc F() string { return str.ToUpper(\"a\") }\n";
        assert_eq!(tidy(used), None);
    }

    #[test]
    fn a_versioned_path_is_named_by_the_element_before_the_version() {
        assert_eq!(package_name("math/rand/v2"), "rand");
        assert_eq!(package_name("unicode/utf8"), "utf8");
        let src = "package p\n\nimport (\n\t\"math/rand/v2\"\n)\n\nfunc F() int { return rand.IntN(3) }\n";
        assert_eq!(tidy(src), None);
    }

    #[test]
    fn layouts_it_does_not_read_with_certainty_are_left_alone() {
        for src in [
            "package p\n\nimport (\"fmt\"; \"strings\")\n\nfunc F() {}\n",
            "package p\n\nimport \"fmt\"; var x = 1\n",
            "package p\n\nimport (\n\t\"fmt\")\n\nfunc F() {}\n",
            "package p\n\nvar s = \"unterminated\n",
            "// no package clause\nfunc F() { fmt.Println() }\n",
        ] {
            assert_eq!(tidy(src), None, "{src}");
        }
    }

    #[test]
    fn a_second_group_keeps_its_place() {
        let src = "package p\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n\n\t\"example.com/x\"\n)\n\nfunc F() { fmt.Println(x.A, sort.Ints, strings.Fields) }\n";
        assert_eq!(
            tidied(src),
            "package p\n\nimport (\n\t\"fmt\"\n\t\"sort\"\n\t\"strings\"\n\n\t\"example.com/x\"\n)\n\nfunc F() { fmt.Println(x.A, sort.Ints, strings.Fields) }\n"
        );
    }
}
