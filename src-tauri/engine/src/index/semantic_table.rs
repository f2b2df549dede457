//! The search table of search by meaning: every chunk's vector, scanned by brute force (unit
//! vectors, so a dot product is the cosine), and the best chunks and files picked without
//! sorting the whole project.
//!
//! The table is made of parts, one per index segment, because a segment never changes: a
//! save adds a small segment and hides the file's old chunks in the others. The next table
//! keeps every old part, with its segment's new list of live documents, and builds only the
//! new segment's part, instead of one matrix of the whole project again.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use tantivy::fastfield::AliveBitSet;
use tantivy::index::SegmentId;
use tantivy::DocId;

use super::classify::FileClass;
use super::search::class_weight;
use super::{ChunkHit, FileHit, SearchOptions, SearchResults};
use crate::error::Result;

/// Rows scored per task of the parallel scan.
const SCAN_BLOCK: usize = 256;

/// A file with chunks in a part.
struct TableFile {
    path: String,
    class: FileClass,
    language: String,
}

/// A chunk in a part: its document, its file (an index into the part's files, which are in
/// path order) and lines.
struct TableRow {
    doc: DocId,
    file: u32,
    start_line: usize,
    end_line: usize,
}

/// One segment's chunks that had a vector when the part was built, row by row in one matrix.
pub(super) struct TablePart {
    files: Vec<TableFile>,
    rows: Vec<TableRow>,
    matrix: Vec<f32>,
    /// Live chunks that are to have a vector and had none yet.
    missing: usize,
    /// How many vectors the store held then.
    vectors_at_build: usize,
}

/// One chunk for [`TablePart::build`]: its document, path, lines, class, language, and its
/// vector (or where to read it).
pub(super) struct TableChunk<'a, V> {
    pub doc: DocId,
    pub path: &'a str,
    pub start_line: usize,
    pub end_line: usize,
    pub class: FileClass,
    pub language: &'a str,
    pub vector: V,
}

impl TablePart {
    /// A part of `chunks`; `read_rows` writes the chunks' vectors straight into the part's
    /// rows (`dims` long), row `i` from the `i`th. `missing` live chunks of the segment had no
    /// vector among the store's `vectors_at_build`.
    pub(super) fn build<'a, V: Copy>(
        dims: usize,
        chunks: impl IntoIterator<Item = TableChunk<'a, V>>,
        read_rows: impl FnOnce(&[V], &mut [f32]) -> Result<()>,
        missing: usize,
        vectors_at_build: usize,
    ) -> Result<Self> {
        let mut chunks: Vec<TableChunk<V>> = chunks.into_iter().collect();
        chunks.sort_by(|a, b| (a.path, a.start_line).cmp(&(b.path, b.start_line)));
        let mut by_path: BTreeMap<&str, (FileClass, &str)> = BTreeMap::new();
        for c in &chunks {
            by_path.entry(c.path).or_insert((c.class, c.language));
        }
        let index: HashMap<&str, u32> = by_path.keys().enumerate().map(|(i, p)| (*p, i as u32)).collect();
        let files = by_path
            .iter()
            .map(|(path, (class, language))| TableFile { path: path.to_string(), class: *class, language: language.to_string() })
            .collect();
        let mut matrix = vec![0.0; chunks.len() * dims];
        read_rows(&chunks.iter().map(|c| c.vector).collect::<Vec<_>>(), &mut matrix)?;
        let rows = chunks
            .iter()
            .map(|c| TableRow { doc: c.doc, file: index[c.path], start_line: c.start_line, end_line: c.end_line })
            .collect();
        Ok(TablePart { files, rows, matrix, missing, vectors_at_build })
    }

    /// Whether the part still holds every vector its chunks have in a store of `vectors`:
    /// it missed none, or the store has not grown since.
    pub(super) fn complete_at(&self, vectors: usize) -> bool {
        self.missing == 0 || self.vectors_at_build == vectors
    }
}

/// A part with the documents of its segment that are still alive (`None`: all).
pub(super) struct LivePart {
    pub segment: SegmentId,
    pub part: Arc<TablePart>,
    pub alive: Option<AliveBitSet>,
}

impl LivePart {
    fn is_alive(&self, doc: DocId) -> bool {
        alive_in(&self.alive, doc)
    }
}

/// Whether `doc` is alive in a segment whose live documents are `alive` (`None`: all).
pub(super) fn alive_in(alive: &Option<AliveBitSet>, doc: DocId) -> bool {
    alive.as_ref().is_none_or(|a| a.is_alive(doc))
}

/// The project's chunk vectors: a part per index segment.
pub struct SemanticTable {
    parts: Vec<LivePart>,
    dims: usize,
    rows_alive: usize,
    chunks_total: usize,
}

/// A ranked row: its score, its part, its row in the part.
type Ranked = (f32, u32, u32);

impl SemanticTable {
    /// A table of `parts`, out of `chunks_total` live chunks that are to have a vector.
    pub(super) fn new(dims: usize, chunks_total: usize, parts: Vec<LivePart>) -> Self {
        let rows_alive = parts.iter().map(|p| p.part.rows.iter().filter(|r| p.is_alive(r.doc)).count()).sum();
        SemanticTable { parts, dims, rows_alive, chunks_total }
    }

    /// Each segment's part, to be kept by the next table.
    pub(super) fn parts(&self) -> HashMap<SegmentId, Arc<TablePart>> {
        self.parts.iter().map(|p| (p.segment, p.part.clone())).collect()
    }

    /// Rows that building the parts still missing vectors again would read.
    pub(super) fn incomplete_rows(&self) -> usize {
        self.parts.iter().filter(|p| p.part.missing > 0).map(|p| p.part.rows.len() + p.part.missing).sum()
    }

    /// Chunks with a vector, and chunks that are to have one (those of source and docs files).
    pub fn coverage(&self) -> (usize, usize) {
        (self.rows_alive, self.chunks_total)
    }

    /// Ranks chunks by cosine similarity to `query_vector`, and files by their best chunk,
    /// weighted by file class as the lexical ranking is. Ties go to the earlier path and line.
    pub fn search(&self, query_vector: &[f32], options: &SearchOptions) -> SearchResults {
        assert_eq!(query_vector.len(), self.dims, "the question was embedded by another model");
        let mut chunks: Vec<Ranked> = Vec::with_capacity(self.rows_alive);
        let mut files: Vec<Ranked> = Vec::new();
        for (p, live) in self.parts.iter().enumerate() {
            let part = &live.part;
            let scores: Vec<f32> = part
                .matrix
                .par_chunks(self.dims * SCAN_BLOCK)
                .flat_map_iter(|block| block.chunks_exact(self.dims).map(|v| dot(v, query_vector)))
                .collect();
            // Per file: whether the options let it in, and its class weight (0 = left out).
            let weight: Vec<f32> = part
                .files
                .iter()
                .map(|f| {
                    let prefix_ok =
                        options.path_prefix.as_deref().is_none_or(|pre| f.path.starts_with(pre.trim_start_matches("./")));
                    let language_ok = options.language.as_deref().is_none_or(|l| l.eq_ignore_ascii_case(&f.language));
                    if prefix_ok && language_ok { class_weight(f.class) } else { 0.0 }
                })
                .collect();
            let mut best: Vec<Option<(f32, u32)>> = vec![None; part.files.len()];
            for (i, (row, &cos)) in part.rows.iter().zip(&scores).enumerate() {
                let w = weight[row.file as usize];
                if w == 0.0 || !live.is_alive(row.doc) {
                    continue;
                }
                let score = cos * w;
                chunks.push((score, p as u32, i as u32));
                let b = &mut best[row.file as usize];
                if b.is_none_or(|(s, _)| score > s) {
                    *b = Some((score, i as u32));
                }
            }
            files.extend(best.into_iter().flatten().map(|(score, i)| (score, p as u32, i)));
        }
        let by_score = |a: &Ranked, b: &Ranked| b.0.total_cmp(&a.0).then_with(|| self.place(a).cmp(&self.place(b)));
        let files = if self.parts.len() > 1 { self.best_per_path(files, by_score) } else { files };
        let chunks = top(chunks, options.limit, by_score)
            .into_iter()
            .map(|r| {
                let (path, start_line) = self.place(&r);
                let row = &self.parts[r.1 as usize].part.rows[r.2 as usize];
                ChunkHit { path: path.to_string(), start_line, end_line: row.end_line, score: r.0, text: String::new() }
            })
            .collect();
        let files = top(files, options.limit, by_score)
            .into_iter()
            .map(|r| {
                let part = &self.parts[r.1 as usize].part;
                let f = &part.files[part.rows[r.2 as usize].file as usize];
                FileHit { path: f.path.clone(), score: r.0, class: f.class, language: f.language.clone() }
            })
            .collect();
        SearchResults { chunks, files }
    }

    /// A ranked row's path and first line, which break ties.
    fn place(&self, r: &Ranked) -> (&str, usize) {
        let part = &self.parts[r.1 as usize].part;
        let row = &part.rows[r.2 as usize];
        (&part.files[row.file as usize].path, row.start_line)
    }

    /// A file's chunks may lie in several segments: its best row, once.
    fn best_per_path(&self, files: Vec<Ranked>, order: impl Fn(&Ranked, &Ranked) -> Ordering) -> Vec<Ranked> {
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(files.len());
        let mut out: Vec<Ranked> = Vec::with_capacity(files.len());
        for r in files {
            match at.entry(self.place(&r).0) {
                Entry::Occupied(o) => {
                    let kept = &mut out[*o.get()];
                    if order(&r, kept) == Ordering::Less {
                        *kept = r;
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(out.len());
                    out.push(r);
                }
            }
        }
        out
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

    type Chunk<'a> = TableChunk<'a, &'a [f32]>;

    fn chunk<'a>(doc: DocId, path: &'a str, start_line: usize, class: FileClass, vector: &'a [f32]) -> Chunk<'a> {
        TableChunk { doc, path, start_line, end_line: start_line + 9, class, language: "rust", vector }
    }

    fn part(chunks: Vec<Chunk>) -> Arc<TablePart> {
        let copy = |vectors: &[&[f32]], rows: &mut [f32]| {
            rows.copy_from_slice(&vectors.iter().flat_map(|v| v.iter().copied()).collect::<Vec<f32>>());
            Ok(())
        };
        Arc::new(TablePart::build(2, chunks, copy, 0, 0).unwrap())
    }

    fn live(part: Arc<TablePart>, alive: Option<AliveBitSet>) -> LivePart {
        LivePart { segment: SegmentId::generate_random(), part, alive }
    }

    fn alive_except(deleted: &[DocId], max_doc: u32) -> AliveBitSet {
        let mut bits = tantivy::BitSet::with_max_value_and_full(max_doc);
        deleted.iter().for_each(|&d| bits.remove(d));
        let mut bytes = Vec::new();
        tantivy::fastfield::write_alive_bitset(&bits, &mut bytes).unwrap();
        AliveBitSet::open(tantivy::directory::OwnedBytes::new(bytes))
    }

    fn ranked(found: &SearchResults) -> (Vec<(&str, usize, f32)>, Vec<(&str, f32)>) {
        let chunks = found.chunks.iter().map(|c| (c.path.as_str(), c.start_line, c.score)).collect();
        (chunks, found.files.iter().map(|f| (f.path.as_str(), f.score)).collect())
    }

    #[test]
    fn chunks_and_files_rank_by_cosine_times_class_weight_with_ties_in_path_order() {
        let (x, y, xy) = ([1.0, 0.0], [0.0, 1.0], [0.6, 0.8]);
        let one = part(vec![
            chunk(0, "src/b.rs", 1, FileClass::Source, &xy),
            chunk(1, "src/b.rs", 11, FileClass::Source, &x),
            chunk(2, "src/a.rs", 1, FileClass::Source, &x),
            chunk(3, "tests/t.rs", 1, FileClass::Test, &x),
            chunk(4, "src/c.rs", 1, FileClass::Source, &y),
        ]);
        let table = SemanticTable::new(2, 6, vec![live(one, None)]);
        assert_eq!(table.coverage(), (5, 6));
        let found = table.search(&[1.0, 0.0], &SearchOptions { limit: 3, ..SearchOptions::default() });
        let (chunks, files) = ranked(&found);
        assert_eq!(chunks, [("src/a.rs", 1, 1.0), ("src/b.rs", 11, 1.0), ("src/b.rs", 1, 0.6)]);
        // The test file's cosine of 1 counts 0.2 (tests are weighted down): still above c.rs's 0.
        assert_eq!(files, [("src/a.rs", 1.0), ("src/b.rs", 1.0), ("tests/t.rs", 0.2)]);

        let only_tests = SearchOptions { limit: 10, path_prefix: Some("./tests/".into()), ..SearchOptions::default() };
        let found = table.search(&[1.0, 0.0], &only_tests);
        assert_eq!(found.files.len(), 1);
        assert_eq!(found.chunks.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["tests/t.rs"]);
    }

    #[test]
    fn parts_rank_as_one_table_without_their_deleted_chunks() {
        let (x, y, xy) = ([1.0, 0.0], [0.0, 1.0], [0.6, 0.8]);
        // A saved b.rs: its old chunk (doc 1) deleted in the first segment, its new one in the
        // second; c.rs has chunks in both segments (indexed by two threads).
        let old = part(vec![
            chunk(0, "src/a.rs", 1, FileClass::Source, &xy),
            chunk(1, "src/b.rs", 1, FileClass::Source, &x),
            chunk(2, "src/c.rs", 1, FileClass::Source, &y),
        ]);
        let new = part(vec![chunk(0, "src/b.rs", 1, FileClass::Source, &y), chunk(1, "src/c.rs", 11, FileClass::Source, &xy)]);
        let table = SemanticTable::new(2, 4, vec![live(old, Some(alive_except(&[1], 3))), live(new, None)]);
        assert_eq!(table.coverage(), (4, 4));
        let found = table.search(&[1.0, 0.0], &SearchOptions { limit: 3, ..SearchOptions::default() });
        let (chunks, files) = ranked(&found);
        assert_eq!(chunks, [("src/a.rs", 1, 0.6), ("src/c.rs", 11, 0.6), ("src/b.rs", 1, 0.0)]);
        assert_eq!(files, [("src/a.rs", 0.6), ("src/c.rs", 0.6), ("src/b.rs", 0.0)], "c.rs once, at its best chunk");
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
