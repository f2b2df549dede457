//! Embedding vectors on disk, keyed by a hash of the text they embed, so a chunk that did not
//! change is never embedded again (a re-index, a branch switch, another project with the
//! same file).
//!
//! One file per embedding model: a header naming the model and the vector length, then
//! fixed-size records (16-byte key, `dims` little-endian f32). Records are only appended; a
//! record torn by a crash is cut off when the file is next opened. It is a cache: a file of
//! another model or version is set aside and a fresh one started, never an error.
//!
//! Only where each record is stays in memory: the vectors are read from the file when a search
//! table is built (which holds its own copy, in the order it scans). On a large project that is
//! the difference between one copy of the vectors in memory and two (~530 MB each at 340,000
//! MiniLM vectors).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"PVECTOR1";
const KEY_BYTES: usize = 16;

/// The key of one embedded text.
pub type VectorKey = [u8; KEY_BYTES];

/// The key under which `text` is stored.
pub fn vector_key(text: &str) -> VectorKey {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(&digest[..KEY_BYTES]);
    key
}

/// The vectors of one embedding model: their file, and where in it each key's vector is.
pub struct VectorStore {
    path: PathBuf,
    dims: usize,
    /// Byte offset of each key's vector in the file.
    offsets: HashMap<VectorKey, u64>,
}

impl VectorStore {
    /// Opens (or creates) the store of model `model_id` with `dims`-long vectors in `dir`.
    pub fn open(dir: &Path, model_id: &str, dims: usize) -> Result<VectorStore> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("{}.vectors", sanitize(model_id)));
        let header = header(model_id, dims);
        let record = (KEY_BYTES + 4 * dims) as u64;
        let mut offsets = HashMap::new();
        let mut end = header.len() as u64;
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => {
                // Locked while read: another process's batch is never half there, nor cut off.
                fs4::fs_std::FileExt::lock_exclusive(&f).map_err(|e| Error::io(&path, e))?;
                let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
                let mut r = BufReader::with_capacity(1 << 20, &f);
                let mut head = vec![0u8; header.len()];
                if r.read_exact(&mut head).is_ok() && head == header {
                    // Only the keys are kept; the vectors are skipped over.
                    let mut rec = vec![0u8; record as usize];
                    while end + record <= len {
                        r.read_exact(&mut rec).map_err(|e| Error::io(&path, e))?;
                        let mut key = [0u8; KEY_BYTES];
                        key.copy_from_slice(&rec[..KEY_BYTES]);
                        offsets.insert(key, end + KEY_BYTES as u64);
                        end += record;
                    }
                    if end != len {
                        // A torn last record: keep the whole ones.
                        f.set_len(end).map_err(|e| Error::io(&path, e))?;
                    }
                } else {
                    // Another model's or format's file under this name: keep it aside, start fresh.
                    let aside = path.with_extension("vectors.old");
                    std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
                    write_new(&path, &header)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new(&path, &header)?,
            Err(e) => return Err(Error::io(&path, e)),
        }
        Ok(VectorStore { path, dims, offsets })
    }

    /// The vector stored for `key`, read from the file.
    pub fn get(&self, key: &VectorKey) -> Result<Option<Vec<f32>>> {
        let Some(&at) = self.offsets.get(key) else { return Ok(None) };
        let mut v = vec![0.0; self.dims];
        self.read_at(at, &mut v)?;
        Ok(Some(v))
    }

    /// A reader of the vectors stored so far that needs no access to the store: a search table
    /// is built from it without holding the store (records are only appended, so where a
    /// vector is never changes).
    pub fn reader(&self) -> Result<VectorReader> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let store = VectorStore { path: self.path.clone(), dims: self.dims, offsets: self.offsets.clone() };
        Ok(VectorReader { store, file })
    }

    /// Whether `key` has a vector.
    pub fn contains(&self, key: &VectorKey) -> bool {
        self.offsets.contains_key(key)
    }

    /// Number of vectors stored.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no vector is stored.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Adds vectors and appends them to the file (flushed before it returns). The file is
    /// locked meanwhile, so a second writer (the app and the CLI on one project) appends after
    /// this batch, never inside it; a failed write (a full disk) is cut off the file again and
    /// nothing of the batch counts as stored.
    pub fn insert(&mut self, batch: Vec<(VectorKey, Vec<f32>)>) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        let mut f = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        fs4::fs_std::FileExt::lock_exclusive(&f).map_err(io)?;
        let start = f.metadata().map_err(io)?.len();
        let mut records = Vec::with_capacity(batch.len() * (KEY_BYTES + 4 * self.dims));
        let mut added: HashMap<VectorKey, u64> = HashMap::new();
        for (key, v) in batch {
            assert_eq!(v.len(), self.dims, "a vector of another length than the store's");
            if self.offsets.contains_key(&key) || added.contains_key(&key) {
                continue;
            }
            added.insert(key, start + (records.len() + KEY_BYTES) as u64);
            records.extend_from_slice(&key);
            v.iter().for_each(|x| records.extend_from_slice(&x.to_le_bytes()));
        }
        if let Err(e) = f.write_all(&records).and_then(|()| f.flush()) {
            let _ = f.set_len(start);
            return Err(io(e));
        }
        self.offsets.extend(added);
        Ok(())
    }

    /// The file the vectors are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, at: u64, into: &mut [f32]) -> Result<()> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        read_vector(&file, &self.path, at, into)
    }
}

/// The vectors a [`VectorStore`] held when [`VectorStore::reader`] was called.
pub struct VectorReader {
    store: VectorStore,
    file: File,
}

impl VectorReader {
    /// Whether `key` has a vector.
    pub fn contains(&self, key: &VectorKey) -> bool {
        self.store.contains(key)
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.store.dims
    }

    /// How many vectors the store held when the reader was made.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the store held no vector then.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Reads the vectors of `keys` into `rows`, row `i` (`dims` long) from `keys[i]`; a key
    /// without a vector leaves its row as it was. The file is read in offset order, in blocks
    /// of up to [`READ_BLOCK`] bytes into one buffer: a table of 200,000 vectors is a few
    /// hundred reads, not 200,000 reads and allocations.
    pub fn read_rows(&self, keys: &[&VectorKey], rows: &mut [f32]) -> Result<()> {
        let dims = self.store.dims;
        assert_eq!(rows.len(), keys.len() * dims, "one row per key");
        let vector_bytes = 4 * dims as u64;
        let mut wanted: Vec<(u64, usize)> =
            keys.iter().enumerate().filter_map(|(row, key)| Some((*self.store.offsets.get(*key)?, row))).collect();
        wanted.sort_unstable();
        let mut block = Vec::new();
        let mut first = 0;
        while first < wanted.len() {
            // A block runs to the end of the last vector that fits within READ_BLOCK of the
            // first: vectors no chunk uses any more are read over only inside a block.
            let start = wanted[first].0;
            let mut last = first;
            while wanted.get(last + 1).is_some_and(|&(at, _)| at + vector_bytes - start <= READ_BLOCK) {
                last += 1;
            }
            block.resize((wanted[last].0 + vector_bytes - start) as usize, 0);
            read_exact_at(&self.file, &mut block, start).map_err(|e| Error::io(&self.store.path, e))?;
            for &(at, row) in &wanted[first..=last] {
                let at = (at - start) as usize;
                decode(&block[at..at + vector_bytes as usize], &mut rows[row * dims..(row + 1) * dims]);
            }
            first = last + 1;
        }
        Ok(())
    }
}

/// The most bytes [`VectorReader::read_rows`] reads at once.
const READ_BLOCK: u64 = 4 << 20;

fn read_vector(file: &File, path: &Path, at: u64, into: &mut [f32]) -> Result<()> {
    let mut bytes = vec![0u8; 4 * into.len()];
    read_exact_at(file, &mut bytes, at).map_err(|e| Error::io(path, e))?;
    decode(&bytes, into);
    Ok(())
}

/// Little-endian f32s from `bytes` into `into`.
fn decode(bytes: &[u8], into: &mut [f32]) {
    for (x, b) in into.iter_mut().zip(bytes.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut std::mem::take(&mut buf)[n..];
        at += n as u64;
    }
    Ok(())
}

fn header(model_id: &str, dims: usize) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&(dims as u32).to_le_bytes());
    h.extend_from_slice(&(model_id.len() as u32).to_le_bytes());
    h.extend_from_slice(model_id.as_bytes());
    h
}

fn write_new(path: &Path, header: &[u8]) -> Result<()> {
    std::fs::write(path, header).map_err(|e| Error::io(path, e))
}

fn sanitize(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_a_reopen_and_a_torn_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = VectorStore::open(dir.path(), "m-3d", 3).unwrap();
        s.insert(vec![(vector_key("a"), vec![1.0, 0.0, 0.0]), (vector_key("b"), vec![0.0, 1.0, 0.0])]).unwrap();
        let path = s.path().to_path_buf();
        drop(s);
        // A crash in the middle of a third record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 20]).unwrap();
        drop(f);
        let s = VectorStore::open(dir.path(), "m-3d", 3).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(&vector_key("b")).unwrap(), Some(vec![0.0, 1.0, 0.0]));
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, header("m-3d", 3).len() + 2 * (16 + 12));
    }

    #[test]
    fn two_stores_on_one_file_append_after_each_other() {
        // The app and the CLI embedding one project: each batch lands whole, after the other's.
        let dir = tempfile::tempdir().unwrap();
        let mut app = VectorStore::open(dir.path(), "m-2d", 2).unwrap();
        let mut cli = VectorStore::open(dir.path(), "m-2d", 2).unwrap();
        app.insert(vec![(vector_key("a"), vec![1.0, 2.0])]).unwrap();
        cli.insert(vec![(vector_key("b"), vec![3.0, 4.0]), (vector_key("c"), vec![5.0, 6.0])]).unwrap();
        app.insert(vec![(vector_key("d"), vec![7.0, 8.0]), (vector_key("d"), vec![9.0, 9.0])]).unwrap();
        assert_eq!(cli.get(&vector_key("c")).unwrap(), Some(vec![5.0, 6.0]));
        assert_eq!(app.get(&vector_key("d")).unwrap(), Some(vec![7.0, 8.0]));
        assert_eq!(app.get(&vector_key("b")).unwrap(), None, "the other's vectors are known after a reopen");
        let both = VectorStore::open(dir.path(), "m-2d", 2).unwrap();
        assert_eq!(both.len(), 4);
        for (k, v) in [("a", [1.0, 2.0]), ("b", [3.0, 4.0]), ("c", [5.0, 6.0]), ("d", [7.0, 8.0])] {
            assert_eq!(both.get(&vector_key(k)).unwrap(), Some(v.to_vec()), "{k}");
        }
    }

    #[test]
    fn a_reader_reads_the_vectors_stored_when_it_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = VectorStore::open(dir.path(), "m-2d", 2).unwrap();
        s.insert(vec![(vector_key("a"), vec![0.5, -1.5])]).unwrap();
        let reader = s.reader().unwrap();
        s.insert(vec![(vector_key("b"), vec![2.0, 3.0])]).unwrap();
        let mut rows = [9.0; 4];
        reader.read_rows(&[&vector_key("b"), &vector_key("a")], &mut rows).unwrap();
        assert_eq!(rows, [9.0, 9.0, 0.5, -1.5], "b came after the reader: its row is left as it was");
        assert!(!reader.contains(&vector_key("b")));
        assert!(s.reader().unwrap().contains(&vector_key("b")));
    }

    #[test]
    fn rows_are_read_in_blocks_whatever_the_order_and_gaps() {
        // Enough vectors for several blocks; every third one is not asked for (a chunk that
        // left the project), keys come in another order than the file's, one key twice.
        let dims = 1000;
        let dir = tempfile::tempdir().unwrap();
        let mut s = VectorStore::open(dir.path(), "m-big", dims).unwrap();
        let n = 3 * READ_BLOCK as usize / (4 * dims);
        let keys: Vec<VectorKey> = (0..n).map(|i| vector_key(&i.to_string())).collect();
        s.insert(keys.iter().enumerate().map(|(i, k)| (*k, vec![i as f32; dims])).collect()).unwrap();
        let mut asked: Vec<usize> = (0..n).rev().filter(|i| i % 3 != 0).collect();
        asked.push(asked[0]);
        let asked_keys: Vec<&VectorKey> = asked.iter().map(|&i| &keys[i]).collect();
        let mut rows = vec![0.0; asked.len() * dims];
        s.reader().unwrap().read_rows(&asked_keys, &mut rows).unwrap();
        for (row, &i) in rows.chunks_exact(dims).zip(&asked) {
            assert!(row.iter().all(|&x| x == i as f32), "row of vector {i}");
        }
    }

    #[test]
    fn a_file_of_another_format_is_set_aside_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m-3d.vectors"), b"something else entirely").unwrap();
        let s = VectorStore::open(dir.path(), "m-3d", 3).unwrap();
        assert!(s.is_empty());
        assert!(dir.path().join("m-3d.vectors.old").exists());
    }
}
