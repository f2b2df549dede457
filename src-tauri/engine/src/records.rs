//! A folder of JSON records, one file per id: conversations, edit proposals and applied
//! changes are all kept this way in a project's data folder. Writes are atomic; a record that
//! cannot be read is reported by name and skipped in listings, never fatal to the rest.
//! Logs (connections, commands) are JSON lines appended to one file ([`append_line`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// A folder of JSON records of one kind.
pub struct RecordDir {
    dir: PathBuf,
    /// What a record is, for messages ("conversation", "proposal", "change").
    kind: &'static str,
}

impl RecordDir {
    /// Records of `kind` (a word for messages) in `dir`.
    pub fn new(dir: PathBuf, kind: &'static str) -> RecordDir {
        RecordDir { dir, kind }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str) -> Result<PathBuf> {
        // Ids are ours (`new_id`), but they also come back from the UI and the command line.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::UnknownRecord { kind: self.kind, id: id.to_string() });
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Writes `record` as `id` atomically.
    pub fn save<T: Serialize>(&self, id: &str, record: &T) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
        crate::paths::write_atomically(&self.file(id)?, &bytes)
    }

    /// Reads the record `id`; [`Error::UnknownRecord`] when there is none.
    pub fn load<T: DeserializeOwned>(&self, id: &str) -> Result<T> {
        let file = self.file(id)?;
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::UnknownRecord { kind: self.kind, id: id.to_string() })
            }
            Err(e) => return Err(Error::io(&file, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptRecord { path: file, reason: format!("unreadable {} ({e})", self.kind) })
    }

    /// Every readable record with its id, newest id first; unreadable ones are returned apart.
    pub fn list<T: DeserializeOwned>(&self) -> Result<(Vec<(String, T)>, Vec<Error>)> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for id in ids {
            match self.load(&id) {
                Ok(r) => good.push((id, r)),
                Err(e) => bad.push(e),
            }
        }
        Ok((good, bad))
    }

    /// Deletes a record; `false` when there was none.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let file = self.file(id)?;
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&file, e)),
        }
    }
}

/// A new record id: sortable by time (so listings are newest first), unique within a process
/// and, with the process id, across processes.
pub fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{ms:013}-{:x}{n:03x}", std::process::id() & 0xffff)
}

/// Seconds since the Unix epoch, for timestamps in records.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_list_load_delete_and_a_corrupt_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RecordDir::new(tmp.path().join("r"), "thing");
        assert!(dir.list::<u32>().unwrap().0.is_empty());
        let (a, b) = (new_id(), new_id());
        assert!(b > a);
        dir.save(&a, &1u32).unwrap();
        dir.save(&b, &2u32).unwrap();
        std::fs::write(tmp.path().join("r/0000000000000-bad.json"), b"{").unwrap();
        let (good, bad) = dir.list::<u32>().unwrap();
        assert_eq!(good, vec![(b.clone(), 2), (a.clone(), 1)]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("unreadable thing"));
        assert!(dir.delete(&a).unwrap());
        assert!(!dir.delete(&a).unwrap());
        assert!(matches!(dir.load::<u32>(&a), Err(Error::UnknownRecord { .. })));
        assert!(matches!(dir.load::<u32>("../escape"), Err(Error::UnknownRecord { .. })));
    }
}

/// Appends `record` to the JSON-lines log at `path` (made with its folder if missing) in a
/// single write, so concurrent writers do not interleave; after a torn write (a crash
/// mid-line) the record starts a new line, so only the torn one is lost.
pub fn append_line<T: Serialize>(path: &Path, record: &T) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(record).expect("a record serializes");
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    if f.metadata()?.len() > 0 {
        f.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    f.write_all(&line)
}

/// Every record of the JSON-lines log at `path`, oldest first (none when it does not exist);
/// a line that does not parse (a torn write) is skipped.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> std::io::Result<Vec<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
