//! The search table of search by meaning: every chunk's vector in one matrix, scanned by
//! brute force (unit vectors, so a dot product is the cosine), and the best chunks and files
//! picked without sorting the whole project.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::classify::FileClass;
use super::search::class_weight;
use super::{ChunkHit, FileHit, SearchOptions, SearchResults};
use crate::error::Result;

/// Rows scored per task of the parallel scan.
const SCAN_BLOCK: usize = 256;

/// A file with chunks in the table.
struct TableFile {
    path: String,
    class: FileClass,
    language: String,
}

/// A chunk in the table: its file (an index into the files, which are in path order) and lines.
struct TableRow {
    file: u32,
    start_line: usize,
    end_line: usize,
}

/// The project's chunk vectors in one matrix, row by row.
pub struct SemanticTable {
    files: Vec<TableFile>,
    rows: Vec<TableRow>,
    matrix: Vec<f32>,
    dims: usize,
    chunks_total: usize,
}

/// One chunk for [`SemanticTable::build`]: path, lines, class, language, and its vector (or
/// where to read it).
pub(super) struct TableChunk<'a, V> {
    pub path: &'a str,
    pub start_line: usize,
    pub end_line: usize,
    pub class: FileClass,
    pub language: &'a str,
    pub vector: V,
}

impl SemanticTable {
    /// A table of `chunks`, out of `chunks_total` that are to have a vector; `read_rows` writes
    /// the chunks' vectors straight into the table's rows (`dims` long), row `i` from the `i`th.
    pub(super) fn build<'a, V: Copy>(
        dims: usize,
        chunks_total: usize,
        chunks: impl IntoIterator<Item = TableChunk<'a, V>>,
        read_rows: impl FnOnce(&[V], &mut [f32]) -> Result<()>,
    ) -> Result<Self> {
        let mut chunks: Vec<TableChunk<V>> = chunks.into_iter().collect();
        chunks.sort_by(|a, b| (a.path, a.start_line).cmp(&(b.path, b.start_line)));
        let mut by_path: BTreeMap<&str, (FileClass, &str)> = BTreeMap::new();
        for c in &chunks {
            by_path.entry(c.path).or_insert((c.class, c.language));
        }
        let index: std::collections::HashMap<&str, u32> = by_path.keys().enumerate().map(|(i, p)| (*p, i as u32)).collect();
        let files = by_path
            .iter()
            .map(|(path, (class, language))| TableFile { path: path.to_string(), class: *class, language: language.to_string() })
            .collect();
        let mut matrix = vec![0.0; chunks.len() * dims];
        read_rows(&chunks.iter().map(|c| c.vector).collect::<Vec<_>>(), &mut matrix)?;
        let rows = chunks
            .iter()
            .map(|c| TableRow { file: index[c.path], start_line: c.start_line, end_line: c.end_line })
            .collect();
        Ok(SemanticTable { files, rows, matrix, dims, chunks_total })
    }

    /// Chunks with a vector, and chunks that are to have one (those of source and docs files).
    pub fn coverage(&self) -> (usize, usize) {
        (self.rows.len(), self.chunks_total)
    }

    /// Ranks chunks by cosine similarity to `query_vector`, and files by their best chunk,
    /// weighted by file class as the lexical ranking is. Ties go to the earlier path and line.
    pub fn search(&self, query_vector: &[f32], options: &SearchOptions) -> SearchResults {
        assert_eq!(query_vector.len(), self.dims, "the question was embedded by another model");
        let scores: Vec<f32> = self
            .matrix
            .par_chunks(self.dims * SCAN_BLOCK)
            .flat_map_iter(|block| block.chunks_exact(self.dims).map(|v| dot(v, query_vector)))
            .collect();
        // Per file: whether the options let it in, and its class weight (0 = left out).
        let weight: Vec<f32> = self
            .files
            .iter()
            .map(|f| {
                let prefix_ok = options.path_prefix.as_deref().is_none_or(|p| f.path.starts_with(p.trim_start_matches("./")));
                let language_ok = options.language.as_deref().is_none_or(|l| l.eq_ignore_ascii_case(&f.language));
                if prefix_ok && language_ok { class_weight(f.class) } else { 0.0 }
            })
            .collect();
        let mut chunks: Vec<(f32, u32)> = Vec::with_capacity(scores.len());
        let mut best: Vec<Option<(f32, u32)>> = vec![None; self.files.len()];
        for (i, (row, &cos)) in self.rows.iter().zip(&scores).enumerate() {
            let w = weight[row.file as usize];
            if w == 0.0 {
                continue;
            }
            let score = cos * w;
            chunks.push((score, i as u32));
            let b = &mut best[row.file as usize];
            if b.is_none_or(|(s, _)| score > s) {
                *b = Some((score, i as u32));
            }
        }
        // Rows are in file order and files in path order, so the row index breaks ties.
        let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let chunks = top(chunks, options.limit, by_score)
            .into_iter()
            .map(|(score, i)| {
                let r = &self.rows[i as usize];
                ChunkHit {
                    path: self.files[r.file as usize].path.clone(),
                    start_line: r.start_line,
                    end_line: r.end_line,
                    score,
                    text: String::new(),
                }
            })
            .collect();
        let files: Vec<(f32, u32)> = best.iter().enumerate().filter_map(|(f, b)| b.map(|(s, _)| (s, f as u32))).collect();
        let files = top(files, options.limit, by_score)
            .into_iter()
            .map(|(score, f)| {
                let f = &self.files[f as usize];
                FileHit { path: f.path.clone(), score, class: f.class, language: f.language.clone() }
            })
            .collect();
        SearchResults { chunks, files }
    }
}

/// The `k` first items of `items` in `order`, sorted; only those are sorted, not all.
fn top<T>(mut items: Vec<T>, k: usize, order: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    if k == 0 {
        return Vec::new();
    }
    if items.len() > k {
        items.select_nth_unstable_by(k - 1, &order);
        items.truncate(k);
    }
    items.sort_by(order);
    items
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight lanes: the compiler keeps them in one AVX register per step.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk<'a>(path: &'a str, start_line: usize, class: FileClass, vector: &'a [f32]) -> TableChunk<'a, &'a [f32]> {
        TableChunk { path, start_line, end_line: start_line + 9, class, language: "rust", vector }
    }

    #[test]
    fn chunks_and_files_rank_by_cosine_times_class_weight_with_ties_in_path_order() {
        let (x, y, xy) = ([1.0, 0.0], [0.0, 1.0], [0.6, 0.8]);
        let table = SemanticTable::build(
            2,
            6,
            [
                chunk("src/b.rs", 1, FileClass::Source, &xy),
                chunk("src/b.rs", 11, FileClass::Source, &x),
                chunk("src/a.rs", 1, FileClass::Source, &x),
                chunk("tests/t.rs", 1, FileClass::Test, &x),
                chunk("src/c.rs", 1, FileClass::Source, &y),
            ],
            |vectors, rows| {
                rows.copy_from_slice(&vectors.iter().flat_map(|v| v.iter().copied()).collect::<Vec<f32>>());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(table.coverage(), (5, 6));
        let found = table.search(&[1.0, 0.0], &SearchOptions { limit: 3, ..SearchOptions::default() });
        let chunks: Vec<(&str, usize, f32)> = found.chunks.iter().map(|c| (c.path.as_str(), c.start_line, c.score)).collect();
        assert_eq!(chunks, [("src/a.rs", 1, 1.0), ("src/b.rs", 11, 1.0), ("src/b.rs", 1, 0.6)]);
        let files: Vec<(&str, f32)> = found.files.iter().map(|f| (f.path.as_str(), f.score)).collect();
        // The test file's cosine of 1 counts 0.2 (tests are weighted down): still above c.rs's 0.
        assert_eq!(files, [("src/a.rs", 1.0), ("src/b.rs", 1.0), ("tests/t.rs", 0.2)]);

        let only_tests = SearchOptions { limit: 10, path_prefix: Some("./tests/".into()), ..SearchOptions::default() };
        let found = table.search(&[1.0, 0.0], &only_tests);
        assert_eq!(found.files.len(), 1);
        assert_eq!(found.chunks.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["tests/t.rs"]);
    }

    #[test]
    fn top_keeps_the_k_best_in_order() {
        let v: Vec<u32> = (0..1000).map(|i| (i * 7919) % 1000).collect();
        assert_eq!(top(v.clone(), 5, |a, b| b.cmp(a)), [999, 998, 997, 996, 995]);
        assert_eq!(top(v.clone(), 0, |a, b| a.cmp(b)), Vec::<u32>::new());
        assert_eq!(top(vec![3, 1, 2], 10, |a, b| a.cmp(b)), [1, 2, 3]);
    }

    #[test]
    fn the_dot_product_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }
}
