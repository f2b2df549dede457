//! A file's text as edits see it: UTF-8, `\n` line breaks, and the file's own conventions
//! (CRLF, a final newline) remembered so that writing it back changes only what was edited.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a file writes its line breaks and whether it ends with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LineStyle {
    /// Every line break is `\r\n` (a file that mixes styles keeps its `\r`s as text).
    pub crlf: bool,
    /// The file ends with a line break.
    pub final_newline: bool,
}

impl Default for LineStyle {
    fn default() -> Self {
        LineStyle { crlf: false, final_newline: true }
    }
}

/// A file's content with `\n` line breaks, and how to write it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileText {
    /// The content with `\n` line breaks.
    pub text: String,
    /// How to write the line breaks back.
    pub style: LineStyle,
}

impl FileText {
    /// Decodes a file's bytes; `path` (project-relative) names it in the error.
    pub fn decode(path: &str, bytes: &[u8]) -> Result<FileText> {
        let raw = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8 { path: path.to_string() })?;
        let breaks = raw.matches('\n').count();
        let crlf = breaks > 0 && raw.matches("\r\n").count() == breaks;
        let text = if crlf { raw.replace("\r\n", "\n") } else { raw.to_string() };
        let final_newline = text.is_empty() || text.ends_with('\n');
        Ok(FileText { text, style: LineStyle { crlf, final_newline } })
    }
}

impl LineStyle {
    /// Writes `text` (with `\n` breaks) in this style. A final newline the edit added or
    /// removed is brought back to the file's convention, which models rarely get right.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        let mut t = self.conform(text);
        if self.crlf {
            t = t.replace('\n', "\r\n");
        }
        t.into_bytes()
    }

    /// `text` (with `\n` breaks) ending the way this file ends.
    pub fn conform(&self, text: &str) -> String {
        let mut t = text.to_string();
        if self.final_newline {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
        } else {
            while t.ends_with('\n') {
                t.pop();
            }
        }
        t
    }
}

/// Hex SHA-256 of a file's bytes: what a proposal or an undo record checks the disk against.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Splits text into lines, each keeping its `\n` (the last may lack one).
pub fn lines_with_endings(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_missing_final_newline_round_trip() {
        for raw in ["a\r\nb\r\n", "a\r\nb", "a\nb", "a\nb\n", "", "one line", "mixed\r\nbreaks\n"] {
            let f = FileText::decode("x", raw.as_bytes()).unwrap();
            assert!(!f.style.crlf || !f.text.contains('\r'));
            assert_eq!(f.style.encode(&f.text), raw.as_bytes(), "{raw:?}");
        }
    }

    #[test]
    fn encoding_keeps_the_file_convention_for_model_text() {
        let f = FileText::decode("x", b"a\r\nb").unwrap();
        assert_eq!(f.style.encode("a\nc\n\n"), b"a\r\nc");
        let f = FileText::decode("x", b"a\r\nb\r\n").unwrap();
        assert_eq!(f.style.encode("a\nc"), b"a\r\nc\r\n");
    }

    #[test]
    fn non_utf8_is_refused_by_name() {
        let e = FileText::decode("src/latin1.txt", b"caf\xe9\n").unwrap_err();
        assert!(e.to_string().contains("src/latin1.txt is not UTF-8"), "{e}");
    }
}
