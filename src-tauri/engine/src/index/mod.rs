//! A project's search index: one tantivy index per project in the app's data folder, never
//! inside the project.
//!
//! Two kinds of document share the index: one per file (path, language, size, content hash,
//! the whole text for file-level scoring) and one per chunk (line range, text, the symbols it
//! defines). Both carry the file's path as a raw term, so replacing a file is one
//! `delete_term` plus adds, and the file documents are the record of what is indexed: an
//! update compares them with the disk and only reads what changed.
//!
//! Crash safety comes from tantivy's commits, which are atomic: a killed update leaves the
//! last commit, and the next update finishes the work. Updates commit every
//! `COMMIT_EVERY_BYTES` so progress survives a kill. Only one process can hold a project's
//! writer; a second gets `Error::IndexLocked`.

mod chunk;
mod classify;
mod search;
mod semantic;
mod semantic_table;
mod tokenizer;
mod walk;
pub mod watch;

pub use chunk::{chunk, Chunk};
pub use classify::{classify, language, FileClass};
pub use search::{ChunkHit, FileHit, SearchOptions, SearchResults};
pub use semantic::{EmbedProgress, EmbedSummary, SearchMode};
pub use semantic_table::SemanticTable;
pub use tokenizer::{terms, CodeTokenizer};
pub use walk::{walk, SkipCounts, WalkedFile, MAX_FILE_BYTES};

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tantivy::collector::DocSetCollector;
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::CancellationToken;

/// Indexing memory budget (tantivy splits it across its threads).
const WRITER_HEAP_BYTES: usize = 64 << 20;
/// Commit at least this often during a long update, so a crash keeps what was done.
const COMMIT_EVERY_BYTES: u64 = 32 << 20;

#[derive(Clone, Copy)]
struct Fields {
    kind: Field,
    path_key: Field,
    doc_id: Field,
    path: Field,
    symbols: Field,
    body: Field,
    text: Field,
    lang: Field,
    class: Field,
    hash: Field,
    size: Field,
    mtime: Field,
    start_line: Field,
    end_line: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let code = |stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("code").set_index_option(IndexRecordOption::WithFreqs),
        );
        if stored {
            o.set_stored()
        } else {
            o
        }
    };
    let fields = Fields {
        kind: b.add_text_field("kind", STRING | STORED),
        path_key: b.add_text_field("path_key", STRING | STORED),
        doc_id: b.add_text_field("doc_id", STRING | STORED),
        path: b.add_text_field("path", code(false)),
        symbols: b.add_text_field("symbols", code(false)),
        body: b.add_text_field("body", code(false)),
        text: b.add_text_field("text", STORED),
        lang: b.add_text_field("lang", STRING | STORED),
        class: b.add_text_field("class", STRING | STORED),
        hash: b.add_text_field("hash", STORED),
        size: b.add_u64_field("size", STORED),
        mtime: b.add_u64_field("mtime", STORED),
        start_line: b.add_u64_field("start_line", STORED),
        end_line: b.add_u64_field("end_line", STORED),
    };
    (b.build(), fields)
}

/// Progress of an update, reported as files are read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct IndexProgress {
    /// Files read so far.
    pub files_done: usize,
    /// Files to read in this update.
    pub files_total: usize,
    /// Bytes read so far.
    pub bytes_done: u64,
    /// Bytes to read in this update.
    pub bytes_total: u64,
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct IndexSummary {
    /// Files (re)indexed because they were new or changed.
    pub files_indexed: usize,
    /// Files left as they were indexed.
    pub files_unchanged: usize,
    /// Files gone from the folder, removed from the index.
    pub files_removed: usize,
    /// Chunks written for the indexed files.
    pub chunks_indexed: usize,
    /// Bytes of the indexed files.
    pub bytes_indexed: u64,
    /// Files left out, by reason.
    pub skipped: SkipCounts,
    /// Wall time of the update.
    pub elapsed_ms: f64,
    /// The update was stopped; what it finished is kept.
    pub cancelled: bool,
}

/// What the index holds for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexedFile {
    hash: String,
    size: u64,
    mtime_ns: u64,
}

/// The tantivy index of one project folder: kept fresh by [`ProjectIndex::update`] and the
/// watcher, searched by [`ProjectIndex::search`].
pub struct ProjectIndex {
    root: PathBuf,
    dir: PathBuf,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// The embedding model and vectors, once attached: [`ProjectIndex::retrieve`] then ranks
    /// by words and meaning.
    semantic: Mutex<Option<semantic::Attached>>,
    /// What the semantic search table was last built from, segment by segment.
    segment_rows: semantic::SegmentRows,
}

impl ProjectIndex {
    /// Opens (or creates) the index of the project at `root`, stored in `index_dir`.
    pub fn open(root: &Path, index_dir: &Path) -> Result<ProjectIndex> {
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        if !root.is_dir() {
            return Err(Error::NotAProjectFolder { path: root });
        }
        std::fs::create_dir_all(index_dir).map_err(|e| Error::io(index_dir, e))?;
        let (schema, fields) = schema();
        let index_error = |e: tantivy::TantivyError| Error::index(index_dir, e);
        let dir = MmapDirectory::open(index_dir).map_err(|e| Error::index(index_dir, e.into()))?;
        let index = Index::open_or_create(dir, schema).map_err(index_error)?;
        index.tokenizers().register("code", TextAnalyzer::builder(CodeTokenizer).build());
        let writer = index.writer(WRITER_HEAP_BYTES).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => Error::IndexLocked { project: root.clone() },
            other => index_error(other),
        })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(index_error)?;
        Ok(ProjectIndex {
            root,
            dir: index_dir.to_path_buf(),
            reader,
            writer: Mutex::new(writer),
            fields,
            semantic: Mutex::new(None),
            segment_rows: Default::default(),
        })
    }

    /// The project folder it indexes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the project's chunk vectors are kept: beside the index, in the app's data.
    pub fn vectors_dir(&self) -> PathBuf {
        self.dir.with_file_name("vectors")
    }

    /// Brings the index up to date with the project on disk: walks it, reads only files whose
    /// size or time changed (and re-indexes only those whose content changed), removes files
    /// that are gone. `cancel` stops it at the next file; what was committed stays.
    pub fn update(&self, progress: &mut dyn FnMut(&IndexProgress), cancel: &CancellationToken) -> Result<IndexSummary> {
        let started = Instant::now();
        let (files, skipped) = walk(&self.root);
        let indexed = self.indexed_files()?;
        let mut summary = IndexSummary { skipped, ..Default::default() };

        let on_disk: BTreeSet<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for gone in indexed.keys().filter(|p| !on_disk.contains(&p[..])) {
            writer.delete_term(Term::from_field_text(self.fields.path_key, gone));
            summary.files_removed += 1;
        }

        let changed: Vec<&WalkedFile> = files
            .iter()
            .filter(|f| indexed.get(&f.rel_path).is_none_or(|i| i.size != f.size || i.mtime_ns != f.mtime_ns))
            .collect();
        summary.files_unchanged = files.len() - changed.len();
        let mut p = IndexProgress {
            files_total: changed.len(),
            bytes_total: changed.iter().map(|f| f.size).sum(),
            ..Default::default()
        };
        progress(&p);
        let mut since_commit = 0u64;
        for f in changed {
            if cancel.is_cancelled() {
                summary.cancelled = true;
                break;
            }
            self.index_and_record(&mut writer, f, indexed.get(&f.rel_path), &mut summary)?;
            p.files_done += 1;
            p.bytes_done += f.size;
            since_commit += f.size;
            if since_commit >= COMMIT_EVERY_BYTES {
                self.commit(&mut writer)?;
                since_commit = 0;
            }
            progress(&p);
        }
        self.commit(&mut writer)?;
        summary.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(summary)
    }

    /// Re-indexes the given project-relative paths (created, modified, deleted or renamed
    /// files), as the watcher reports them. One commit for the whole batch.
    pub fn update_paths(&self, rel_paths: &BTreeSet<String>) -> Result<IndexSummary> {
        let started = Instant::now();
        let indexed = self.indexed_files()?;
        let mut summary = IndexSummary::default();
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let filter = watch::PathFilter::new(&self.root);
        // A path inside a changed folder may be a file or a whole subtree: re-walk subtrees.
        let mut candidates: Vec<WalkedFile> = Vec::new();
        for rel in rel_paths {
            let abs = self.root.join(rel);
            if abs.is_dir() {
                let (files, skipped) = walk(&abs);
                summary.skipped.merge(&skipped);
                candidates.extend(files.into_iter().map(|mut f| {
                    f.rel_path = format!("{rel}/{}", f.rel_path);
                    f
                }));
            } else if let Some(f) = self.walked_file(rel, &filter) {
                candidates.push(f);
            } else {
                // Gone: the file itself, or every file that was under it.
                let prefix = format!("{rel}/");
                for p in indexed.keys().filter(|p| *p == rel || p.starts_with(&prefix)) {
                    writer.delete_term(Term::from_field_text(self.fields.path_key, p));
                    summary.files_removed += 1;
                }
            }
        }
        for f in &candidates {
            self.index_and_record(&mut writer, f, indexed.get(&f.rel_path), &mut summary)?;
        }
        self.commit(&mut writer)?;
        summary.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(summary)
    }

    /// A single file as the walker would report it, if it is one the walker would keep.
    fn walked_file(&self, rel: &str, filter: &watch::PathFilter) -> Option<WalkedFile> {
        let abs = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&abs).ok()?;
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES || !filter.allows(&abs) {
            return None;
        }
        Some(WalkedFile { rel_path: rel.to_string(), abs_path: abs, size: meta.len(), mtime_ns: walk::mtime_ns(&meta) })
    }

    /// Indexes one file and counts the outcome; a file that is now skipped (it became
    /// binary, too large to read…) leaves the index if it was in it.
    fn index_and_record(
        &self,
        writer: &mut IndexWriter,
        f: &WalkedFile,
        old: Option<&IndexedFile>,
        summary: &mut IndexSummary,
    ) -> Result<()> {
        match self.index_file(writer, f, old)? {
            FileOutcome::Indexed { chunks } => {
                summary.files_indexed += 1;
                summary.chunks_indexed += chunks;
                summary.bytes_indexed += f.size;
            }
            FileOutcome::Unchanged => summary.files_unchanged += 1,
            FileOutcome::Skipped(reason) => {
                summary.skipped.add(reason);
                if old.is_some() {
                    writer.delete_term(Term::from_field_text(self.fields.path_key, &f.rel_path));
                    summary.files_removed += 1;
                }
            }
        }
        Ok(())
    }

    fn index_file(&self, writer: &mut IndexWriter, f: &WalkedFile, old: Option<&IndexedFile>) -> Result<FileOutcome> {
        let bytes = match std::fs::read(&f.abs_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileOutcome::Skipped("vanished")),
            Err(_) => return Ok(FileOutcome::Skipped("unreadable")),
        };
        if let Some(reason) = walk::reject_content(&bytes) {
            return Ok(FileOutcome::Skipped(reason));
        }
        let hash = hex::encode(&Sha256::digest(&bytes)[..16]);
        if old.is_some_and(|o| o.hash == hash && o.size == bytes.len() as u64) {
            // Same content, new time (a touch, a checkout): nothing to re-index.
            return Ok(FileOutcome::Unchanged);
        }
        let text = std::str::from_utf8(&bytes).expect("checked by reject_content");
        let fl = &self.fields;
        writer.delete_term(Term::from_field_text(fl.path_key, &f.rel_path));
        let lang = language(&f.rel_path);
        let class = classify(&f.rel_path).as_str();
        let add = |w: &mut IndexWriter, d: TantivyDocument| w.add_document(d).map_err(|e| Error::index(&self.dir, e));
        add(
            writer,
            doc!(
                fl.kind => "file",
                fl.path_key => f.rel_path.as_str(),
                fl.doc_id => format!("{}#{hash}", f.rel_path),
                fl.path => f.rel_path.as_str(),
                fl.body => text,
                fl.lang => lang,
                fl.class => class,
                fl.hash => hash.as_str(),
                fl.size => bytes.len() as u64,
                fl.mtime => f.mtime_ns,
            ),
        )?;
        let chunks = chunk(text);
        for c in &chunks {
            add(
                writer,
                doc!(
                    fl.kind => "chunk",
                    fl.path_key => f.rel_path.as_str(),
                    fl.doc_id => format!("{}#{hash}:{}", f.rel_path, c.start_line),
                    fl.path => f.rel_path.as_str(),
                    fl.symbols => c.symbols.join(" "),
                    fl.body => c.text.as_str(),
                    fl.text => c.text.as_str(),
                    fl.lang => lang,
                    fl.class => class,
                    fl.start_line => c.start_line as u64,
                    fl.end_line => c.end_line as u64,
                ),
            )?;
        }
        Ok(FileOutcome::Indexed { chunks: chunks.len() })
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit().map_err(|e| Error::index(&self.dir, e))?;
        self.reader.reload().map_err(|e| Error::index(&self.dir, e))
    }

    /// Every indexed file with its content hash, size and time, from the file documents.
    fn indexed_files(&self) -> Result<HashMap<String, IndexedFile>> {
        let searcher = self.reader.searcher();
        let fl = &self.fields;
        let query = TermQuery::new(Term::from_field_text(fl.kind, "file"), IndexRecordOption::Basic);
        let docs = searcher.search(&query, &DocSetCollector).map_err(|e| Error::index(&self.dir, e))?;
        let mut out = HashMap::with_capacity(docs.len());
        for addr in docs {
            let d: TantivyDocument = searcher.doc(addr).map_err(|e| Error::index(&self.dir, e))?;
            let s = |f: Field| d.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let n = |f: Field| d.get_first(f).and_then(|v| v.as_u64()).unwrap_or_default();
            out.insert(s(fl.path_key), IndexedFile { hash: s(fl.hash), size: n(fl.size), mtime_ns: n(fl.mtime) });
        }
        Ok(out)
    }

    /// Number of files in the index.
    pub fn file_count(&self) -> Result<usize> {
        Ok(self.indexed_files()?.len())
    }

    /// Every indexed file's project-relative path, sorted.
    pub fn paths(&self) -> Result<Vec<String>> {
        let mut paths: Vec<String> = self.indexed_files()?.into_keys().collect();
        paths.sort();
        Ok(paths)
    }
}

enum FileOutcome {
    Indexed { chunks: usize },
    Unchanged,
    Skipped(&'static str),
}
