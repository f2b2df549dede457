//! Embedding vectors on disk, keyed by a hash of the text they embed, so a chunk that did not
//! change is never embedded again (a re-index, a branch switch, another project with the
//! same file).
//!
//! One file per embedding model: a header naming the model and the vector length, then
//! fixed-size records (16-byte key, `dims` little-endian f32). Records are only appended; a
//! record torn by a crash is cut off when the file is next opened. It is a cache: a file of
//! another model or version is set aside and a fresh one started, never an error.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
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

/// The vectors of one embedding model, in memory and in their file.
pub struct VectorStore {
    path: PathBuf,
    dims: usize,
    vectors: HashMap<VectorKey, Box<[f32]>>,
}

impl VectorStore {
    /// Opens (or creates) the store of model `model_id` with `dims`-long vectors in `dir`.
    pub fn open(dir: &Path, model_id: &str, dims: usize) -> Result<VectorStore> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("{}.vectors", sanitize(model_id)));
        let header = header(model_id, dims);
        let mut vectors = HashMap::new();
        match File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
                if bytes.starts_with(&header) {
                    let record = KEY_BYTES + 4 * dims;
                    let whole = (bytes.len() - header.len()) / record * record;
                    for r in bytes[header.len()..header.len() + whole].chunks_exact(record) {
                        let mut key = [0u8; KEY_BYTES];
                        key.copy_from_slice(&r[..KEY_BYTES]);
                        let v: Box<[f32]> =
                            r[KEY_BYTES..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                        vectors.insert(key, v);
                    }
                    if header.len() + whole != bytes.len() {
                        // A torn last record: keep the whole ones.
                        let f = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
                        f.set_len((header.len() + whole) as u64).map_err(|e| Error::io(&path, e))?;
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
        Ok(VectorStore { path, dims, vectors })
    }

    /// The vector stored for `key`.
    pub fn get(&self, key: &VectorKey) -> Option<&[f32]> {
        self.vectors.get(key).map(|v| &v[..])
    }

    /// Whether `key` has a vector.
    pub fn contains(&self, key: &VectorKey) -> bool {
        self.vectors.contains_key(key)
    }

    /// Number of vectors stored.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether no vector is stored.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Adds vectors and appends them to the file (flushed before it returns).
    pub fn insert(&mut self, batch: Vec<(VectorKey, Vec<f32>)>) -> Result<()> {
        let f = OpenOptions::new().append(true).open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut w = BufWriter::new(f);
        for (key, v) in batch {
            assert_eq!(v.len(), self.dims, "a vector of another length than the store's");
            if self.vectors.contains_key(&key) {
                continue;
            }
            let mut record = Vec::with_capacity(KEY_BYTES + 4 * self.dims);
            record.extend_from_slice(&key);
            v.iter().for_each(|x| record.extend_from_slice(&x.to_le_bytes()));
            w.write_all(&record).map_err(|e| Error::io(&self.path, e))?;
            self.vectors.insert(key, v.into_boxed_slice());
        }
        w.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// The file the vectors are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }
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
        assert_eq!(s.get(&vector_key("b")), Some(&[0.0, 1.0, 0.0][..]));
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, header("m-3d", 3).len() + 2 * (16 + 12));
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
