//! The local record of every outbound connection Perimeter made (`<data>/network-log.jsonl`,
//! one JSON object per line), which the user can open at any time. Nothing is ever sent
//! anywhere from it; an empty log is the proof that nothing left the machine.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{paths, records, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// One outbound connection, as the network log keeps it.
pub struct ConnectionRecord {
    /// Unix seconds when the connection was opened.
    pub at: u64,
    /// The host connected to.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// What it was for, in words ("company inference server", "model download").
    pub purpose: String,
    /// Bytes sent, body only.
    pub bytes_sent: u64,
    /// Bytes received, body only.
    pub bytes_received: u64,
    /// "ok", or what went wrong.
    pub outcome: String,
}

impl ConnectionRecord {
    /// A record of a connection opened now, "ok" until told otherwise.
    pub fn new(host: &str, port: u16, purpose: &str) -> ConnectionRecord {
        ConnectionRecord {
            at: records::now(),
            host: host.to_string(),
            port,
            purpose: purpose.to_string(),
            bytes_sent: 0,
            bytes_received: 0,
            outcome: "ok".to_string(),
        }
    }
}

/// The log of outbound connections: one JSON line each, appended.
pub struct ConnectionLog {
    path: PathBuf,
}

impl ConnectionLog {
    /// The log in the app's data folder.
    pub fn default_location() -> ConnectionLog {
        ConnectionLog::at(&paths::data_dir().join("network-log.jsonl"))
    }

    /// The log at `path`.
    pub fn at(path: &Path) -> ConnectionLog {
        ConnectionLog { path: path.to_path_buf() }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (one line in a single write; a torn line before it is left alone).
    pub fn record(&self, r: &ConnectionRecord) -> Result<()> {
        records::append_line(&self.path, r).map_err(|e| Error::NetworkPolicy {
            reason: format!("the connection log {} cannot be written: {e}", self.path.display()),
        })
    }

    /// Every record, oldest first; a line that does not parse (a torn write) is skipped.
    pub fn read(&self) -> Result<Vec<ConnectionRecord>> {
        records::read_lines(&self.path).map_err(|e| Error::NetworkPolicy {
            reason: format!("the connection log {} cannot be read: {e}", self.path.display()),
        })
    }

    /// "nothing has left this machine", or how many connections there were and the last one.
    pub fn summary(&self) -> Result<String> {
        let all = self.read()?;
        Ok(match all.last() {
            None => "nothing has left this machine".to_string(),
            Some(last) => {
                let sent: u64 = all.iter().map(|r| r.bytes_sent).sum();
                format!("{} connection(s), {sent} bytes sent; last to {} ({})", all.len(), last.host, last.purpose)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn records_are_appended_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let log = ConnectionLog::at(&d.path().join("sub/network-log.jsonl"));
        assert!(log.read().unwrap().is_empty());
        assert_eq!(log.summary().unwrap(), "nothing has left this machine");
        let mut r = ConnectionRecord::new("llm.corp.example", 443, "company inference server");
        r.bytes_sent = 1200;
        log.record(&r).unwrap();
        std::fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"{torn").unwrap();
        log.record(&ConnectionRecord::new("artifacts.corp.example", 8443, "model download")).unwrap();
        let all = log.read().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], r);
        assert!(log.summary().unwrap().contains("2 connection(s), 1200 bytes sent; last to artifacts.corp.example"));
    }
}
