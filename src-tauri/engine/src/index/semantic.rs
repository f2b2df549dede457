//! Searching a project by meaning: every chunk's vector from an [`Embedder`], searched in a
//! [`SemanticTable`] (a brute-force cosine scan), and a fusion with the lexical ranking for
//! hybrid search.
//!
//! The vectors live in a [`VectorStore`] keyed by the text each chunk is embedded as, so
//! embedding after an update only computes chunks that are new or changed; a chunk without a
//! vector yet is simply not in the semantic ranking (the lexical one still has it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::fastfield::AliveBitSet;
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Searcher, SegmentOrdinal, TantivyDocument, Term};

use super::classify::FileClass;
use super::semantic_table::{alive_in, LivePart, SemanticTable, TableChunk, TablePart};
use super::{ChunkHit, FileHit, ProjectIndex, SearchOptions, SearchResults};
use crate::embed::{vector_key, Embedder, VectorKey, VectorReader, VectorStore};
use crate::error::{Error, Result};
use crate::CancellationToken;

/// Chunks embedded in one call of the model: enough to keep its matrix products busy, few
/// enough that Stop answers within a second or two.
const BATCH: usize = 8;
/// How much the cosine counts beside the lexical score scaled to 1 (see [`fuse`]).
const SEMANTIC_WEIGHT: f32 = 0.25;
/// Each ranking's candidates considered for fusion.
const FUSION_DEPTH: usize = 100;
/// Rows of the search table's incomplete parts that are built again as soon as vectors are
/// added (~15 MB of 384-dimension vectors, tens of milliseconds).
const SMALL_REBUILD_ROWS: usize = 10_000;

/// How a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 over the code's words (always available).
    Lexical,
    /// Cosine similarity of embedding vectors.
    Semantic,
    /// Both rankings fused (see [`fuse`]).
    #[default]
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lexical" => Ok(SearchMode::Lexical),
            "semantic" => Ok(SearchMode::Semantic),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(format!("`{other}` is not a search mode; use lexical, semantic or hybrid")),
        }
    }
}

/// Progress of embedding a project's chunks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct EmbedProgress {
    /// Chunks embedded so far in this run.
    pub chunks_done: usize,
    /// Chunks this run has to embed (those without a vector).
    pub chunks_total: usize,
}

/// What embedding a project's chunks did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct EmbedSummary {
    /// Chunks the model embedded.
    pub chunks_embedded: usize,
    /// Chunks whose text already had a vector.
    pub chunks_reused: usize,
    /// Wall time.
    pub elapsed_ms: f64,
    /// Stopped early; the vectors computed are kept.
    pub cancelled: bool,
}

/// A chunk as the semantic ranking needs it.
struct ChunkRow {
    path: String,
    start_line: usize,
    end_line: usize,
    class: FileClass,
    language: String,
}

/// What the model reads for a chunk: its path says what the file is about as much as the
/// code does.
fn embed_text(path: &str, text: &str) -> String {
    format!("{path}\n{text}")
}

/// A chunk waiting for its vector: the key, the class of its file, the length of its text, and
/// the document it is in. Its text is read again when its batch comes, so a project's pending
/// texts (the whole code base, on a first run) are never in memory together.
struct Pending {
    class: FileClass,
    key: VectorKey,
    len: usize,
    doc: DocAddress,
}

impl ProjectIndex {
    /// Visits every chunk document of `searcher` in the segments `wanted`: where it is, its
    /// row, and the text it is embedded as (the visitor keeps what it needs of it).
    fn for_each_chunk(
        &self,
        searcher: &Searcher,
        wanted: &dyn Fn(SegmentOrdinal) -> bool,
        visit: &mut dyn FnMut(DocAddress, ChunkRow, String),
    ) -> Result<()> {
        let fl = &self.fields;
        let err = |e| Error::index(&self.dir, e);
        let query = TermQuery::new(Term::from_field_text(fl.kind, "chunk"), IndexRecordOption::Basic);
        let found = searcher.search(&query, &DocSetCollector).map_err(err)?;
        let mut docs: Vec<DocAddress> = found.into_iter().filter(|a| wanted(a.segment_ord)).collect();
        // In document order: the stored texts are read block by block, not a block per chunk
        // (3x faster on a 400 MB project than the collector's hash order).
        docs.sort_unstable();
        for addr in docs {
            let d: TantivyDocument = searcher.doc(addr).map_err(err)?;
            let s = |f| d.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let n = |f| d.get_first(f).and_then(|v| v.as_u64()).unwrap_or_default() as usize;
            let row = ChunkRow {
                start_line: n(fl.start_line),
                end_line: n(fl.end_line),
                class: FileClass::parse(&s(fl.class)),
                language: s(fl.lang),
                path: s(fl.path_key),
            };
            visit(addr, row, self.embed_text_of(&d));
        }
        Ok(())
    }

    /// The text the chunk document at `addr` is embedded as.
    fn embed_text_at(&self, searcher: &Searcher, addr: DocAddress) -> Result<String> {
        Ok(self.embed_text_of(&searcher.doc(addr).map_err(|e| Error::index(&self.dir, e))?))
    }

    /// The text a chunk document is embedded as: the one place it is made, so the key a chunk
    /// is listed under (its hash) and the text its batch embeds are always the same.
    fn embed_text_of(&self, d: &TantivyDocument) -> String {
        let s = |f| d.get_first(f).and_then(|v| v.as_str()).unwrap_or_default();
        embed_text(s(self.fields.path_key), s(self.fields.text))
    }

    /// Embeds every chunk of a source or docs file that has no vector in `store` yet, source
    /// first. Tests and generated files are left to the lexical ranking: for "where is this
    /// done" they are rarely the answer (it scales them down too), and they are often half a
    /// project's chunks, at ~10 chunks/s on two cores. Cancelling keeps every batch finished
    /// so far; the next call goes on from there.
    pub fn embed_chunks(
        &self,
        embedder: &Embedder,
        store: &mut VectorStore,
        progress: &mut dyn FnMut(&EmbedProgress),
        cancel: &CancellationToken,
    ) -> Result<EmbedSummary> {
        let store = std::cell::RefCell::new(store);
        self.embed_missing(
            embedder,
            &|key| store.borrow().contains(key),
            &mut |batch| store.borrow_mut().insert(batch),
            progress,
            &|| cancel.is_cancelled(),
        )
    }

    /// The embedding loop, with the store reached through `has` and `put` so that the
    /// attached store is locked per batch, not for the whole run (searches go on meanwhile).
    /// `stop` is asked before each batch.
    fn embed_missing(
        &self,
        embedder: &Embedder,
        has: &dyn Fn(&VectorKey) -> bool,
        put: &mut dyn FnMut(Vec<(VectorKey, Vec<f32>)>) -> Result<()>,
        progress: &mut dyn FnMut(&EmbedProgress),
        stop: &dyn Fn() -> bool,
    ) -> Result<EmbedSummary> {
        let started = Instant::now();
        // One searcher for the whole run: the pending chunks' addresses are its documents.
        let searcher = self.reader.searcher();
        let (chunks_reused, mut todo) = self.unembedded(&searcher, has)?;
        let mut summary = EmbedSummary { chunks_reused, ..EmbedSummary::default() };
        // Similar lengths in a batch pad less.
        todo.sort_by_key(|c| (c.class != FileClass::Source, c.len));
        let mut p = EmbedProgress { chunks_done: 0, chunks_total: todo.len() };
        progress(&p);
        for batch in todo.chunks(BATCH) {
            if stop() {
                summary.cancelled = true;
                break;
            }
            let texts = batch.iter().map(|c| self.embed_text_at(&searcher, c.doc)).collect::<Result<Vec<_>>>()?;
            let vectors = embedder.embed_documents(&texts.iter().map(String::as_str).collect::<Vec<_>>())?;
            put(batch.iter().map(|c| c.key).zip(vectors).collect())?;
            summary.chunks_embedded += batch.len();
            p.chunks_done += batch.len();
            progress(&p);
        }
        summary.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(summary)
    }

    /// The chunks of source and docs files that `has` no vector for, each text once, and how
    /// many chunks already have one.
    fn unembedded(&self, searcher: &Searcher, has: &dyn Fn(&VectorKey) -> bool) -> Result<(usize, Vec<Pending>)> {
        let mut reused = 0;
        let mut todo = Vec::new();
        let mut seen = HashSet::new();
        self.for_each_chunk(searcher, &|_| true, &mut |doc, row, text| {
            if !embedded_class(row.class) {
                return;
            }
            let key = vector_key(&text);
            if has(&key) {
                reused += 1;
            } else if seen.insert(key) {
                todo.push(Pending { class: row.class, key, len: text.len(), doc });
            }
        })?;
        Ok((reused, todo))
    }

    /// The keys of the chunks an embedding run with `store` would embed: what is left to do.
    pub fn unembedded_keys(&self, store: &VectorStore) -> Result<Vec<VectorKey>> {
        let (_, todo) = self.unembedded(&self.reader.searcher(), &|key| store.contains(key))?;
        Ok(todo.into_iter().map(|c| c.key).collect())
    }

    /// Attaches an embedding model and the project's vectors for it (from
    /// [`ProjectIndex::vectors_dir`]): from now on [`ProjectIndex::retrieve`] is hybrid, with
    /// whatever vectors exist, and [`ProjectIndex::embed_pending`] adds the missing ones.
    pub fn attach_embedder(&self, embedder: Arc<Embedder>) -> Result<()> {
        let store = VectorStore::open(&self.vectors_dir(), &embedder.id(), embedder.dims())?;
        *self.semantic.lock().unwrap_or_else(|p| p.into_inner()) = Some(Attached { embedder, store, table: None });
        Ok(())
    }

    /// Embeds what the attached store lacks (see [`ProjectIndex::embed_chunks`]); `None`
    /// when no embedder is attached. When another embedder is attached meanwhile (the user
    /// chose another model), the run goes on with it: no vector of one model ever lands in
    /// the other's store.
    pub fn embed_pending(
        &self,
        progress: &mut dyn FnMut(&EmbedProgress),
        cancel: &CancellationToken,
    ) -> Result<Option<EmbedSummary>> {
        let lock = || self.semantic.lock().unwrap_or_else(|p| p.into_inner());
        let attached = || lock().as_ref().map(|a| a.embedder.clone());
        let Some(mut embedder) = attached() else { return Ok(None) };
        let mut total = EmbedSummary::default();
        loop {
            let current = |a: &Attached| Arc::ptr_eq(&a.embedder, &embedder);
            let has = |key: &VectorKey| lock().as_ref().is_some_and(|a| current(a) && a.store.contains(key));
            let mut put = |batch| match lock().as_mut() {
                Some(a) if current(a) => a.store.insert(batch),
                _ => Ok(()),
            };
            let replaced = || !lock().as_ref().is_some_and(current);
            let s = self.embed_missing(&embedder, &has, &mut put, progress, &|| cancel.is_cancelled() || replaced())?;
            total.chunks_embedded += s.chunks_embedded;
            total.chunks_reused = s.chunks_reused;
            total.elapsed_ms += s.elapsed_ms;
            total.cancelled = cancel.is_cancelled();
            match attached() {
                Some(next) if !total.cancelled && !Arc::ptr_eq(&next, &embedder) => embedder = next,
                _ => return Ok(Some(total)),
            }
        }
    }

    /// What ask, edit and the agent search with: hybrid when an embedder is attached and has
    /// vectors, lexical otherwise.
    pub fn retrieve(&self, query: &str, options: &SearchOptions) -> Result<SearchResults> {
        self.retrieve_by(query, options, SearchMode::Hybrid)
    }

    /// Searches by `mode` with the attached embedder and the vectors it has so far; lexical
    /// when none is attached, none is embedded yet, or the semantic side fails (a search
    /// must answer; the lexical answer is always there).
    pub fn retrieve_by(&self, query: &str, options: &SearchOptions, mode: SearchMode) -> Result<SearchResults> {
        if mode == SearchMode::Lexical || self.warm_semantic_table().is_err() {
            return self.search(query, options);
        }
        let guard = self.semantic.lock().unwrap_or_else(|p| p.into_inner());
        let Some((attached, table)) = guard.as_ref().and_then(|a| Some((a, &a.table.as_ref()?.1))) else {
            drop(guard);
            return self.search(query, options);
        };
        let query_vector = match attached.embedder.embed_query(query) {
            Ok(v) => v,
            Err(_) => return self.search(query, options),
        };
        self.search_by(query, options, mode, Some((table, &query_vector)))
    }

    /// Builds the search table of the attached vectors if it is missing or stale, so that the
    /// next search need not (the app calls it after each embedding run). Reading every chunk,
    /// the slow part (seconds on a large project), is done without holding the vectors, so
    /// embedding and searching go on meanwhile. `true` when it built one; `false` when the
    /// table was fresh, or there is no embedder or no vector yet.
    pub fn warm_semantic_table(&self) -> Result<bool> {
        let lock = || self.semantic.lock().unwrap_or_else(|p| p.into_inner());
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        let stale = |a: &Attached| {
            let vectors = a.store.len();
            // Rebuilt when the index changed, or when vectors were added: at once when the parts
            // still missing vectors are small (a saved file's), else, while an embedding run
            // fills large ones, only after a tenth more or half a minute, as they are read again.
            vectors > 0
                && a.table.as_ref().is_none_or(|(b, t)| {
                    b.generation != generation
                        || (vectors != b.vectors
                            && (t.incomplete_rows() <= SMALL_REBUILD_ROWS
                                || vectors > b.vectors + b.vectors / 10
                                || b.at.elapsed().as_secs() >= 30))
                })
        };
        if !lock().as_ref().is_some_and(stale) {
            return Ok(false);
        }
        let rows = self.chunk_listing(&searcher)?;
        let (embedder, reader, vectors, kept) = match lock().as_ref() {
            Some(a) => (a.embedder.clone(), a.store.reader()?, a.store.len(), a.table.as_ref().map(|(_, t)| t.parts())),
            None => return Ok(false),
        };
        // Read from the file, not under the lock: embedding and searching go on meanwhile.
        let table = table_of(&rows, &reader, &kept.unwrap_or_default())?;
        let mut guard = lock();
        let Some(attached) = guard.as_mut().filter(|a| Arc::ptr_eq(&a.embedder, &embedder)) else { return Ok(false) };
        attached.table = Some((Built { generation, vectors, at: Instant::now() }, table));
        Ok(true)
    }

    /// Whether an embedder is attached.
    pub fn has_embedder(&self) -> bool {
        self.semantic.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The chunks that have a vector in `store`, ready to search.
    pub fn semantic_table(&self, store: &VectorStore) -> Result<SemanticTable> {
        table_of(&self.chunk_listing(&self.reader.searcher())?, &store.reader()?, &HashMap::new())
    }

    /// Every chunk of `searcher` with the key of its vector. Segments read before come from
    /// [`SegmentRows`]; only new ones (after a save, a merge) are read from the index.
    fn chunk_listing(&self, searcher: &Searcher) -> Result<ChunkListing> {
        let mut cache = self.segment_rows.0.lock().unwrap_or_else(|p| p.into_inner());
        let segments = searcher.segment_readers();
        let new: HashSet<SegmentOrdinal> =
            (0..segments.len() as SegmentOrdinal).filter(|&o| !cache.contains_key(&segments[o as usize].segment_id())).collect();
        let mut read: HashMap<SegmentOrdinal, Vec<(DocId, ChunkRow, VectorKey)>> = HashMap::new();
        self.for_each_chunk(searcher, &|o| new.contains(&o), &mut |addr, row, text| {
            read.entry(addr.segment_ord).or_default().push((addr.doc_id, row, vector_key(&text)))
        })?;
        let mut kept = HashMap::new();
        let mut listing = ChunkListing { segments: Vec::with_capacity(segments.len()) };
        for (o, segment) in segments.iter().enumerate() {
            let id = segment.segment_id();
            let rows = match cache.remove(&id) {
                Some(rows) => rows,
                None => Arc::new(read.remove(&(o as SegmentOrdinal)).unwrap_or_default()),
            };
            listing.segments.push((id, rows.clone(), segment.alive_bitset().cloned()));
            kept.insert(id, rows);
        }
        // Segments merged away are forgotten.
        *cache = kept;
        Ok(listing)
    }

    /// Searches by `mode`. Semantic and hybrid need `semantic` (the table and the question's
    /// vector); without it they answer lexically, as the app does while embedding runs.
    pub fn search_by(
        &self,
        query: &str,
        options: &SearchOptions,
        mode: SearchMode,
        semantic: Option<(&SemanticTable, &[f32])>,
    ) -> Result<SearchResults> {
        let Some((table, query_vector)) = semantic.filter(|_| mode != SearchMode::Lexical) else {
            return self.search(query, options);
        };
        let deep = SearchOptions { limit: options.limit.max(FUSION_DEPTH), ..options.clone() };
        let mut by_meaning = table.search(query_vector, &deep);
        if mode == SearchMode::Semantic {
            by_meaning.files.truncate(options.limit);
            by_meaning.chunks.truncate(options.limit);
            return self.with_chunk_text(by_meaning);
        }
        let by_words = self.search(query, &deep)?;
        let fused = SearchResults {
            files: fuse(&by_words.files, &by_meaning.files, options.limit, |f| f.path.clone()),
            chunks: fuse(&by_words.chunks, &by_meaning.chunks, options.limit, |c| format!("{}:{}", c.path, c.start_line)),
        };
        self.with_chunk_text(fused)
    }

    /// Fills in the text of chunk hits that came from the vectors alone (the table keeps no
    /// text: on a large project that would be the whole code base in memory again).
    fn with_chunk_text(&self, mut results: SearchResults) -> Result<SearchResults> {
        let searcher = self.reader.searcher();
        let fl = &self.fields;
        let err = |e| Error::index(&self.dir, e);
        for hit in results.chunks.iter_mut().filter(|c| c.text.is_empty()) {
            let q = TermQuery::new(Term::from_field_text(fl.path_key, &hit.path), IndexRecordOption::Basic);
            for addr in searcher.search(&q, &DocSetCollector).map_err(err)? {
                let d: TantivyDocument = searcher.doc(addr).map_err(err)?;
                let is_chunk = d.get_first(fl.kind).and_then(|v| v.as_str()) == Some("chunk");
                if is_chunk && d.get_first(fl.start_line).and_then(|v| v.as_u64()) == Some(hit.start_line as u64) {
                    hit.text = d.get_first(fl.text).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                    break;
                }
            }
        }
        Ok(results)
    }
}

/// Each index segment's chunk rows (document, row, key), kept between table builds: a segment
/// never changes (a delete only hides documents), so after a save only the new segment is read,
/// not every chunk of the project again.
#[derive(Default)]
pub(super) struct SegmentRows(Mutex<HashMap<SegmentId, Arc<Vec<(DocId, ChunkRow, VectorKey)>>>>);

/// The chunk rows of a searcher's segments, with which documents of each are still alive.
struct ChunkListing {
    segments: Vec<(SegmentId, Arc<Vec<(DocId, ChunkRow, VectorKey)>>, Option<AliveBitSet>)>,
}

/// The table of the chunks in `listing` that have a vector in `vectors`: the parts in `kept`
/// that still hold every vector their chunks have, and new parts for the other segments.
fn table_of(
    listing: &ChunkListing,
    vectors: &VectorReader,
    kept: &HashMap<SegmentId, Arc<TablePart>>,
) -> Result<SemanticTable> {
    // A live chunk that is to have a vector.
    let wanted = |alive: &Option<AliveBitSet>, doc: DocId, row: &ChunkRow| alive_in(alive, doc) && embedded_class(row.class);
    let total = listing
        .segments
        .iter()
        .flat_map(|(_, rows, alive)| rows.iter().filter(move |(doc, row, _)| wanted(alive, *doc, row)))
        .count();
    let parts = listing
        .segments
        .par_iter()
        .map(|(segment, rows, alive)| {
            let part = match kept.get(segment).filter(|p| p.complete_at(vectors.len())) {
                Some(part) => part.clone(),
                None => {
                    let missing = rows
                        .iter()
                        .filter(|(doc, row, key)| wanted(alive, *doc, row) && !vectors.contains(key))
                        .count();
                    // Deleted chunks too: the part outlives deletes, which only hide rows.
                    let chunks = rows.iter().filter(|(_, _, key)| vectors.contains(key)).map(|(doc, row, key)| TableChunk {
                        doc: *doc,
                        path: &row.path,
                        start_line: row.start_line,
                        end_line: row.end_line,
                        class: row.class,
                        language: &row.language,
                        vector: key,
                    });
                    let read = |keys: &[&VectorKey], out: &mut [f32]| vectors.read_rows(keys, out);
                    Arc::new(TablePart::build(vectors.dims(), chunks, read, missing, vectors.len())?)
                }
            };
            Ok(LivePart { segment: *segment, part, alive: alive.clone() })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SemanticTable::new(vectors.dims(), total, parts))
}

/// Source and docs chunks get vectors; tests and generated files do not (see
/// [`ProjectIndex::embed_chunks`]).
fn embedded_class(class: FileClass) -> bool {
    matches!(class, FileClass::Source | FileClass::Docs)
}

/// An attached embedder, its vector store, and the search table built from them, with the
/// index generation and vector count it was built at.
pub(super) struct Attached {
    embedder: Arc<Embedder>,
    store: VectorStore,
    table: Option<(Built, SemanticTable)>,
}

/// When a search table was built: the index generation, the vector count, the time.
struct Built {
    generation: u64,
    vectors: usize,
    at: Instant,
}

/// Fuses a lexical and a semantic ranking: lexical scores scaled to the best one (BM25 has no
/// fixed range), plus `SEMANTIC_WEIGHT` times the cosine (an item the semantic ranking did
/// not return gets its lowest score). Tuned on shared/retrieval-dev (BENCHMARKS.md): it beat
/// reciprocal-rank fusion there, which throws away how far ahead the best lexical hit is.
fn fuse<T: Clone + HasScore>(lexical: &[T], semantic: &[T], limit: usize, key: impl Fn(&T) -> String) -> Vec<T> {
    let best = lexical.iter().map(T::score).fold(0.0f32, f32::max);
    let floor = semantic.iter().map(T::score).fold(f32::INFINITY, f32::min);
    let floor = if floor.is_finite() { floor } else { 0.0 };
    let mut merged: HashMap<String, (f32, Option<f32>, T)> = HashMap::new();
    for item in lexical {
        let lex = if best > 0.0 { item.score() / best } else { 0.0 };
        merged.entry(key(item)).or_insert_with(|| (lex, None, item.clone()));
    }
    for item in semantic {
        merged.entry(key(item)).or_insert_with(|| (0.0, None, item.clone())).1 = Some(item.score());
    }
    let mut out: Vec<(String, f32, T)> = merged
        .into_iter()
        .map(|(k, (lex, sem, t))| (k, lex + SEMANTIC_WEIGHT * sem.unwrap_or(floor), t))
        .collect();
    out.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    out.truncate(limit);
    out.into_iter()
        .map(|(_, s, mut t)| {
            t.set_score(s);
            t
        })
        .collect()
}

trait HasScore {
    fn score(&self) -> f32;
    fn set_score(&mut self, score: f32);
}
impl HasScore for FileHit {
    fn score(&self) -> f32 {
        self.score
    }
    fn set_score(&mut self, score: f32) {
        self.score = score;
    }
}
impl HasScore for ChunkHit {
    fn score(&self) -> f32 {
        self.score
    }
    fn set_score(&mut self, score: f32) {
        self.score = score;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, score: f32) -> FileHit {
        FileHit { path: path.into(), score, class: FileClass::Source, language: "rust".into() }
    }

    #[test]
    fn fusion_adds_the_cosine_to_the_scaled_lexical_score() {
        let words = [file("a.rs", 10.0), file("b.rs", 8.0), file("c.rs", 1.0)];
        let meaning = [file("c.rs", 0.9), file("d.rs", 0.5), file("b.rs", 0.4)];
        let fused = fuse(&words, &meaning, 4, |f| f.path.clone());
        let got: Vec<(&str, f32)> = fused.iter().map(|f| (f.path.as_str(), f.score)).collect();
        let w = SEMANTIC_WEIGHT;
        // a.rs was not among the semantic hits: it gets their lowest cosine.
        let want = [("a.rs", 1.0 + w * 0.4), ("b.rs", 0.8 + w * 0.4), ("c.rs", 0.1 + w * 0.9), ("d.rs", w * 0.5)];
        let mut want = want.to_vec();
        want.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(got.len(), 4);
        for ((gp, gs), (wp, ws)) in got.iter().zip(&want) {
            assert_eq!(gp, wp);
            assert!((gs - ws).abs() < 1e-6);
        }
    }
}
