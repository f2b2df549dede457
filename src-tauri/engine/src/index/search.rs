//! Searching a project: a question in, ranked chunks and ranked files out.
//!
//! Scoring is BM25 over the code tokenizer's terms, in three fields with their own weights
//! (the text, the file path, the names a chunk defines). A file's score adds its whole-file
//! score to its best chunk's, so a file that is about the question overall and a file with one
//! passage squarely on it both rank. Tests, docs and generated files are multiplied down:
//! for "which code should change" they are rarely the answer, but they stay findable.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{TantivyDocument, Term};

use super::classify::FileClass;
use super::tokenizer::terms;
use super::ProjectIndex;
use crate::error::{Error, Result};

/// Field weights, tuned on shared/retrieval-dev (see BENCHMARKS.md): a term in a definition's
/// name counts as much again as in running text; a path term helps but less (paths repeat
/// common words such as `src` or the project's name, and weighting them more cost MRR).
const PATH_BOOST: f32 = 0.5;
const SYMBOL_BOOST: f32 = 1.0;
/// How much a file's best chunk adds to its whole-file score.
const CHUNK_WEIGHT: f32 = 1.0;
/// Candidates read from each kind of document before merging.
const CANDIDATES: usize = 400;

/// Words that say nothing about where code lives.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had",
    "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or",
    "our", "should", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these", "this",
    "those", "to", "was", "we", "were", "what", "when", "where", "which", "while", "who", "why", "will", "with",
    "would", "you", "your",
];

pub(super) fn class_weight(class: FileClass) -> f32 {
    match class {
        FileClass::Source => 1.0,
        FileClass::Test => 0.2,
        FileClass::Docs => 0.5,
        FileClass::Generated => 0.3,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// What a search returns and where it looks.
pub struct SearchOptions {
    /// Most hits of each kind (chunks, files).
    pub limit: usize,
    /// Only paths under this prefix (project-relative, `/`-separated).
    pub path_prefix: Option<String>,
    /// Only files of this language (as `index::language` names them).
    pub language: Option<String>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { limit: 10, path_prefix: None, language: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A chunk that matched, best first.
pub struct ChunkHit {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    /// Relevance (BM25 weighted by file class); only comparable within one search.
    pub score: f32,
    /// The chunk's lines.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A file that matched, ranked by its chunks' scores.
pub struct FileHit {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// Relevance; only comparable within one search.
    pub score: f32,
    /// Source, test, docs or generated.
    pub class: FileClass,
    /// As [`crate::index::language`] names it.
    pub language: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// What a search found.
pub struct SearchResults {
    /// Best first.
    pub chunks: Vec<ChunkHit>,
    /// Best first.
    pub files: Vec<FileHit>,
}

impl ProjectIndex {
    /// Searches the index for `query` (words, identifiers, paths); ranks chunks and files.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<SearchResults> {
        let mut counts: HashMap<String, f32> = HashMap::new();
        for t in terms(query) {
            if !STOPWORDS.contains(&t.as_str()) {
                *counts.entry(t).or_default() += 1.0;
            }
        }
        if counts.is_empty() {
            return Ok(SearchResults::default());
        }
        let searcher = self.reader.searcher();
        let fl = self.fields;
        let err = |e| Error::index(&self.dir, e);
        let accept = |path: &str, lang: &str| {
            options.path_prefix.as_deref().is_none_or(|p| path.starts_with(p.trim_start_matches("./")))
                && options.language.as_deref().is_none_or(|l| l.eq_ignore_ascii_case(lang))
        };

        let run = |kind: &str| -> Result<Vec<(f32, TantivyDocument)>> {
            let q = build_query(&fl, kind, &counts);
            let top = searcher.search(&q, &TopDocs::with_limit(CANDIDATES).order_by_score()).map_err(err)?;
            top.into_iter()
                .map(|(score, addr)| Ok((score, searcher.doc::<TantivyDocument>(addr).map_err(err)?)))
                .collect()
        };
        let text = |d: &TantivyDocument, f: Field| d.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let num = |d: &TantivyDocument, f: Field| d.get_first(f).and_then(|v| v.as_u64()).unwrap_or_default() as usize;

        // path -> (class, language, whole-file score, best chunk score)
        let mut files: HashMap<String, (FileClass, String, f32, f32)> = HashMap::new();
        for (score, d) in run("file")? {
            let path = text(&d, fl.path_key);
            let lang = text(&d, fl.lang);
            if accept(&path, &lang) {
                let class = FileClass::parse(&text(&d, fl.class));
                files.insert(path, (class, lang, score, 0.0));
            }
        }
        let mut chunks = Vec::new();
        for (score, d) in run("chunk")? {
            let path = text(&d, fl.path_key);
            let lang = text(&d, fl.lang);
            if !accept(&path, &lang) {
                continue;
            }
            let class = FileClass::parse(&text(&d, fl.class));
            let entry = files.entry(path.clone()).or_insert((class, lang, 0.0, 0.0));
            entry.3 = entry.3.max(score);
            chunks.push(ChunkHit {
                path,
                start_line: num(&d, fl.start_line),
                end_line: num(&d, fl.end_line),
                score: score * class_weight(class),
                text: text(&d, fl.text),
            });
        }

        let mut files: Vec<FileHit> = files
            .into_iter()
            .map(|(path, (class, language, file_score, chunk_score))| FileHit {
                score: (file_score + CHUNK_WEIGHT * chunk_score) * class_weight(class),
                path,
                class,
                language,
            })
            .collect();
        files.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
        files.truncate(options.limit);
        chunks.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| (&a.path, a.start_line).cmp(&(&b.path, b.start_line))));
        chunks.truncate(options.limit);
        Ok(SearchResults { chunks, files })
    }
}

/// `kind` documents matching any of the terms, each term weighted by how often the question
/// says it, in the text, path and symbol fields.
fn build_query(fl: &super::Fields, kind: &str, counts: &HashMap<String, f32>) -> BooleanQuery {
    let mut any_term: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut sorted: Vec<_> = counts.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (t, n) in sorted {
        for (field, boost) in [(fl.body, 1.0), (fl.path, PATH_BOOST), (fl.symbols, SYMBOL_BOOST)] {
            let q = TermQuery::new(Term::from_field_text(field, t), IndexRecordOption::WithFreqs);
            any_term.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost * n))));
        }
    }
    // The kind filter adds nothing to the score; at least one term must match.
    let kind_q = TermQuery::new(Term::from_field_text(fl.kind, kind), IndexRecordOption::Basic);
    BooleanQuery::new(vec![
        (Occur::Must, Box::new(BoostQuery::new(Box::new(kind_q), 0.0))),
        (Occur::Must, Box::new(BooleanQuery::new(any_term))),
    ])
}
