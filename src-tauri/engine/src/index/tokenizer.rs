//! Tokenizing source code: whole identifiers and their parts.
//!
//! `parseHttpHeader`, `parse_http_header` and `parse-http-header` all yield the parts
//! `parse`, `http`, `header`; the whole identifier is kept too (`parsehttpheader` for the
//! camelCase one), so an exact identifier in a question matches strongly and its words match
//! too. Paths split the same way (`src/printer.rs` → `src`, `printer`, `rs`).

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Tokens longer than this are hashes, base64 or minified code, not words.
const MAX_TOKEN_BYTES: usize = 40;

/// Calls `emit` with each lowercased term of `text`, whole identifiers first, then parts.
pub fn for_each_term(text: &str, mut emit: impl FnMut(&str, usize, usize)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut lower = String::new();
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        if word.len() > MAX_TOKEN_BYTES {
            continue;
        }
        lower.clear();
        lower.push_str(&word.to_ascii_lowercase());
        let trimmed = lower.trim_matches('_');
        if trimmed.is_empty() {
            continue;
        }
        emit(trimmed, start, i);
        let whole_len = trimmed.len();
        let mut part_start = None;
        let wb = word.as_bytes();
        for j in 0..=wb.len() {
            let boundary = j == wb.len() || wb[j] == b'_' || (j > 0 && is_part_boundary(wb, j));
            if boundary {
                if let Some(s) = part_start.take() {
                    if j > s && (j - s) < whole_len {
                        emit(&lower[s..j], start + s, start + j);
                    }
                }
            }
            if j < wb.len() && wb[j] != b'_' && part_start.is_none() {
                part_start = Some(j);
            }
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A camelCase boundary before `j`: `aB`, `ABc` (before the B), `a1`, `1a`.
fn is_part_boundary(w: &[u8], j: usize) -> bool {
    let (prev, cur) = (w[j - 1], w[j]);
    if prev == b'_' {
        return false;
    }
    (prev.is_ascii_lowercase() && cur.is_ascii_uppercase())
        || (prev.is_ascii_uppercase() && cur.is_ascii_uppercase() && w.get(j + 1).is_some_and(|n| n.is_ascii_lowercase()))
        || (prev.is_ascii_alphabetic() && cur.is_ascii_digit())
        || (prev.is_ascii_digit() && cur.is_ascii_alphabetic())
}

/// The terms of `text`, in order, with repeats.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_term(text, |t, _, _| out.push(t.to_string()));
    out
}

/// tantivy's view of `for_each_term`, registered as the `code` tokenizer.
#[derive(Clone, Default)]
pub struct CodeTokenizer;

pub struct CodeTokenStream {
    tokens: Vec<Token>,
    index: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream {
        let mut tokens = Vec::new();
        for_each_term(text, |t, from, to| {
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position: tokens.len(),
                text: t.to_string(),
                position_length: 1,
            })
        });
        CodeTokenStream { tokens, index: usize::MAX }
    }
}

impl TokenStream for CodeTokenStream {
    fn advance(&mut self) -> bool {
        self.index = self.index.wrapping_add(1);
        self.index < self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.index]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index]
    }
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn identifiers_are_kept_whole_and_split() {
        assert_eq!(terms("parseHttpHeader"), ["parsehttpheader", "parse", "http", "header"]);
        assert_eq!(terms("parse_http_header"), ["parse_http_header", "parse", "http", "header"]);
        assert_eq!(terms("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(terms("src/printer.rs"), ["src", "printer", "rs"]);
        assert_eq!(terms("utf8Decode"), ["utf8decode", "utf", "8", "decode"]);
        assert_eq!(terms("__init__"), ["init"]);
        assert_eq!(terms("kebab-case-name"), ["kebab", "case", "name"]);
    }

    #[test]
    fn long_blobs_are_dropped() {
        assert!(terms(&"a".repeat(41)).is_empty());
        assert_eq!(terms("x = 1"), ["x", "1"]);
    }
}
