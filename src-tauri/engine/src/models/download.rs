//! Downloading a catalog model: from a source the network policy allows, into a partial file
//! in the model folder, resumable (HTTP range requests) after a cut connection, a restart or a
//! sleep, verified by size and sha256 before the model is listed as installed.
//!
//! Sources, in order: `--from URL` alone when given; else the policy files' mirrors
//! (`<mirror>/<file name>`), then the catalog's own URLs. Every host, redirects included, is
//! checked against the policy before a socket is opened, and every request is written to the
//! connection log. One download per file at a time (a lock file); a second is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, CatalogModel};
use super::store::{InstalledModel, ModelStore};
use crate::error::{Error, IoContext, Result};
use crate::CancellationToken;
use crate::network::{ConnectionLog, ConnectionRecord, NetworkPolicy};

const PURPOSE: &str = "model download";
/// Room kept free beyond the file itself (the manifest, the index, the OS).
const DISK_MARGIN: u64 = 16 << 20;
/// Consecutive attempts on one source that each got some bytes before failing.
const MAX_RESUMES: u32 = 5;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
/// Where and how patiently to download.
pub struct PullOptions {
    /// Fetch from this URL only (the file itself, not a folder).
    pub from: Option<String>,
    /// Longest wait for a connection, and for each piece of the file.
    pub timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { from: None, timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
/// What a download is doing.
pub enum Phase {
    /// Hashing the bytes a previous attempt left, before asking for the rest.
    Checking,
    /// Receiving the file.
    Downloading,
}

/// What a progress callback sees, about ten times a second.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct PullProgress {
    /// The catalog id.
    pub model: String,
    /// Checking or downloading.
    pub phase: Phase,
    /// `host[:port]` of the source being read.
    pub source: String,
    /// Bytes of the file on disk so far.
    pub done: u64,
    /// Bytes of the whole file.
    pub total: u64,
    /// Bytes already on disk when this download started (not fetched again).
    pub resumed_from: u64,
    /// Recent speed.
    pub bytes_per_s: f64,
    /// Seconds left at that speed, when it can be told.
    pub eta_s: Option<u64>,
}

/// What a partial file's download was talking to, kept beside it for resuming.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartialNotes {
    url: String,
    /// A strong validator of the remote file, so a resumed range is from the same file.
    etag: Option<String>,
}

/// Downloads catalog model `id` and installs it; `progress` is called as bytes arrive.
pub async fn pull(
    store: &ModelStore,
    catalog: &Catalog,
    id: &str,
    policy: &NetworkPolicy,
    log: &ConnectionLog,
    options: &PullOptions,
    progress: &mut (dyn FnMut(&PullProgress) + Send),
    cancel: &CancellationToken,
) -> Result<InstalledModel> {
    let model = catalog.get(id).ok_or_else(|| Error::UnknownModel { name: id.to_string() })?.clone();
    if let Some(installed) = store.list()?.into_iter().find(|m| m.catalog_id.as_deref() == Some(model.id.as_str())) {
        if installed.file.is_file() {
            return Ok(installed);
        }
    }
    fs::create_dir_all(store.dir()).at(store.dir())?;
    let lock_path = store.lock_path(&model.file_name);
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).at(&lock_path)?;
    if lock.try_lock().is_err() {
        return Err(Error::DownloadBusy { model: model.id.clone() });
    }

    let (sources, refused) = allowed_sources(&model, policy, options)?;
    if sources.is_empty() {
        return Err(Error::Download { model: model.id.clone(), reason: no_source_advice(&model, &refused) });
    }
    let mut download = Download::new(store, &model, policy.clone(), log, options);
    let mut failures = refused;
    for url in &sources {
        match download.from_source(url, progress, cancel).await {
            Ok(sha256) => {
                download.finish_progress(progress);
                return download.install(sha256);
            }
            // Another source cannot help with these.
            Err(e @ (Error::DownloadCancelled { .. } | Error::DiskFull { .. } | Error::Io { .. })) => return Err(e),
            Err(e) => failures.push(format!("{}: {}", host_of(url), reason_of(&e))),
        }
    }
    let kept = download.part_len();
    let mut reason = failures.join("; ");
    if kept > 0 {
        reason.push_str(&format!(
            ". {} of {} are kept in {}; run the download again to resume",
            mib(kept),
            mib(model.size_bytes),
            download.part.display()
        ));
    }
    Err(Error::Download { model: model.id.clone(), reason })
}

/// The sources to try, and why others were refused by the policy.
fn allowed_sources(model: &CatalogModel, policy: &NetworkPolicy, options: &PullOptions) -> Result<(Vec<String>, Vec<String>)> {
    let candidates: Vec<String> = match &options.from {
        Some(url) => vec![url.clone()],
        None => policy
            .mirrors()
            .iter()
            .map(|m| format!("{}/{}", m.trim_end_matches('/'), model.file_name))
            .chain(model.sources.iter().cloned())
            .collect(),
    };
    let (mut allowed, mut refused) = (Vec::new(), Vec::new());
    for url in candidates {
        let (host, port) = parse_source(&model.id, &url)?;
        match policy.check(&host, port, PURPOSE) {
            Ok(()) => allowed.push(url),
            Err(e) => refused.push(reason_of(&e)),
        }
    }
    Ok((allowed, refused))
}

fn no_source_advice(model: &CatalogModel, refused: &[String]) -> String {
    format!(
        "no source of {} is allowed by the network policy ({}). Allow the host with `perimeter network allow HOST` \
         (Hugging Face also needs `*.hf.co`, where it redirects downloads), ask your administrator for a mirror \
         (`mirrors` in the policy file), or copy the file from elsewhere and run `perimeter models import FILE`",
        model.file_name,
        refused.join("; ")
    )
}

fn parse_source(model: &str, url: &str) -> Result<(String, u16)> {
    let bad = |why: String| Error::Download { model: model.to_string(), reason: format!("`{url}` {why}") };
    let u = reqwest::Url::parse(url).map_err(|e| bad(format!("is not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL".to_string()));
    }
    let host = u.host_str().ok_or_else(|| bad("has no host".to_string()))?.to_string();
    Ok((host.trim_matches(['[', ']']).to_string(), u.port_or_known_default().unwrap_or(443)))
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| url.to_string())
}

/// An error's message without the "downloading X failed" frame, for lists of reasons.
fn reason_of(e: &Error) -> String {
    match e {
        Error::Download { reason, .. } => reason.clone(),
        Error::NetworkRefused { host, reason, .. } => format!("{host} is refused: {reason}"),
        other => other.to_string(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// One model's download in progress: the partial file, its running hash, and the client.
struct Download<'a> {
    store: &'a ModelStore,
    model: &'a CatalogModel,
    log: &'a ConnectionLog,
    options: &'a PullOptions,
    policy: NetworkPolicy,
    part: PathBuf,
    notes_path: PathBuf,
    /// Hash of the first `hashed` bytes of the partial file.
    hasher: Sha256,
    hashed: u64,
    resumed_from: u64,
    started: Instant,
    last_report: Option<Instant>,
    source: String,
}

/// Why one request ended early: whether trying again from where it stopped makes sense.
enum Cut {
    /// Got bytes, then the connection broke or stalled: resume.
    Resumable(Error),
    /// Nothing more to gain from this source.
    Fatal(Error),
}

impl<'a> Download<'a> {
    fn new(store: &'a ModelStore, model: &'a CatalogModel, policy: NetworkPolicy, log: &'a ConnectionLog, options: &'a PullOptions) -> Self {
        let part = store.partial_path(&model.file_name);
        let notes_path = store.partial_notes_path(&model.file_name);
        Download {
            store,
            model,
            log,
            options,
            policy,
            notes_path,
            part,
            hasher: Sha256::new(),
            hashed: 0,
            resumed_from: 0,
            started: Instant::now(),
            last_report: None,
            source: String::new(),
        }
    }

    fn part_len(&self) -> u64 {
        fs::metadata(&self.part).map(|m| m.len()).unwrap_or(0)
    }

    /// Fetches the rest of the file from `url`, resuming while attempts make progress.
    /// Returns the sha256 of the whole file once it has the expected size.
    async fn from_source(&mut self, url: &str, progress: &mut (dyn FnMut(&PullProgress) + Send), cancel: &CancellationToken) -> Result<String> {
        self.source = host_of(url);
        let client = self.client()?;
        let mut resumes = 0;
        loop {
            let notes = self.read_notes();
            self.check_partial(url, &notes, progress, cancel)?;
            if self.hashed == self.model.size_bytes {
                return self.verified_hash();
            }
            self.check_disk_space()?;
            match self.request(&client, url, &notes, progress, cancel).await {
                Ok(()) => return self.verified_hash(),
                Err(Cut::Resumable(_)) if resumes < MAX_RESUMES => {
                    resumes += 1;
                    let wait = Duration::from_millis(500 << resumes.min(4));
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(self.cancelled()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(Cut::Resumable(e) | Cut::Fatal(e)) => return Err(e),
            }
        }
    }

    /// A client that checks every redirect against the policy and uses no proxy (a proxy would
    /// be a connection the policy did not see).
    fn client(&self) -> Result<reqwest::Client> {
        let policy = self.policy.clone();
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(self.options.timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("more than 10 redirects");
                }
                let url = attempt.url();
                let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
                let port = url.port_or_known_default().unwrap_or(443);
                match policy.check(&host, port, PURPOSE) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(RedirectRefused(e.to_string())),
                }
            }))
            .build()
            .map_err(|e| self.error(format!("the HTTP client cannot start: {e}")))
    }

    /// Brings the running hash up to the partial file's length (after a restart, that means
    /// reading what is already there), and drops a partial file that cannot be resumed.
    fn check_partial(&mut self, url: &str, notes: &PartialNotes, progress: &mut (dyn FnMut(&PullProgress) + Send), cancel: &CancellationToken) -> Result<()> {
        let len = self.part_len();
        // Bytes from another file (the catalog has no hash to tell) or more than the file has.
        let foreign = self.model.sha256.is_none() && len > 0 && notes.url != url;
        if len > self.model.size_bytes || len < self.hashed || foreign {
            self.restart()?;
            return Ok(());
        }
        if self.hashed == 0 && len > 0 {
            self.resumed_from = len;
        }
        if len > self.hashed {
            let mut f = File::open(&self.part).at(&self.part)?;
            f.seek(SeekFrom::Start(self.hashed)).at(&self.part)?;
            let mut buf = vec![0u8; 1 << 20];
            while self.hashed < len {
                if cancel.is_cancelled() {
                    return Err(self.cancelled());
                }
                let want = buf.len().min((len - self.hashed) as usize);
                let n = f.read(&mut buf[..want]).at(&self.part)?;
                if n == 0 {
                    break;
                }
                self.hasher.update(&buf[..n]);
                self.hashed += n as u64;
                self.report(Phase::Checking, progress, false);
            }
        }
        Ok(())
    }

    /// The notes a previous attempt left beside the partial file (none: empty notes).
    fn read_notes(&self) -> PartialNotes {
        fs::read(&self.notes_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Empties the partial file (a server that ignores ranges, a file that changed).
    fn restart(&mut self) -> Result<()> {
        File::create(&self.part).at(&self.part)?;
        self.hasher = Sha256::new();
        self.hashed = 0;
        self.resumed_from = 0;
        Ok(())
    }

    fn check_disk_space(&self) -> Result<()> {
        let needed = self.model.size_bytes - self.hashed + DISK_MARGIN;
        // A file system that cannot say is not a reason to refuse; a full disk is still caught on write.
        let Ok(available) = fs4::available_space(self.store.dir()) else { return Ok(()) };
        if available < needed {
            return Err(Error::DiskFull { path: self.store.dir().to_path_buf(), needed, available });
        }
        Ok(())
    }

    /// One HTTP request for the bytes from `self.hashed` on, appended to the partial file.
    async fn request(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        notes: &PartialNotes,
        progress: &mut (dyn FnMut(&PullProgress) + Send),
        cancel: &CancellationToken,
    ) -> std::result::Result<(), Cut> {
        let (host, port) = parse_source(&self.model.id, url).map_err(Cut::Fatal)?;
        self.policy.check(&host, port, PURPOSE).map_err(Cut::Fatal)?;
        let start = self.hashed;
        let mut request = client.get(url);
        if start > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-"));
            if let Some(etag) = notes.etag.as_deref().filter(|_| notes.url == url) {
                request = request.header(reqwest::header::IF_RANGE, etag);
            }
        }
        let mut record = ConnectionRecord::new(&host, port, PURPOSE);
        let outcome = self.exchange(request, url, start, &mut record, progress, cancel).await;
        if let Err(Cut::Resumable(e) | Cut::Fatal(e)) = &outcome {
            record.outcome = e.to_string();
        }
        // The log is the user's record; failing to write it must not lose the download.
        let _ = self.log.record(&record);
        outcome
    }

    async fn exchange(
        &mut self,
        request: reqwest::RequestBuilder,
        url: &str,
        start: u64,
        record: &mut ConnectionRecord,
        progress: &mut (dyn FnMut(&PullProgress) + Send),
        cancel: &CancellationToken,
    ) -> std::result::Result<(), Cut> {
        let timeout = self.options.timeout;
        let sent = tokio::select! {
            _ = cancel.cancelled() => return Err(Cut::Fatal(self.cancelled())),
            r = tokio::time::timeout(timeout, request.send()) => r,
        };
        let mut response = match sent {
            Err(_) => return Err(Cut::Fatal(self.error(format!("{} did not answer within {} s", self.source, timeout.as_secs())))),
            Ok(Err(e)) => return Err(Cut::Fatal(self.transport_error(e))),
            Ok(Ok(r)) => r,
        };
        if let Some(final_host) = response.url().host_str().filter(|h| *h != record.host) {
            record.outcome = format!("redirected to {final_host}");
        }
        let status = response.status().as_u16();
        let total_here = match status {
            206 => {
                let range = response.headers().get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(parse_content_range);
                match range {
                    Some((first, total)) if first == start && total.is_none_or(|t| t == self.model.size_bytes) => {}
                    Some((_, Some(total))) if total != self.model.size_bytes => return Err(Cut::Fatal(self.wrong_size(total))),
                    _ => {
                        // Not the range asked for: start over rather than splice.
                        self.restart().map_err(Cut::Fatal)?;
                        return Err(Cut::Resumable(self.error("the server answered with another range than the one asked for".into())));
                    }
                }
                self.model.size_bytes
            }
            200 => {
                if start > 0 {
                    // The server ignores ranges (or the file changed): the whole file is coming.
                    self.restart().map_err(Cut::Fatal)?;
                }
                match response.content_length() {
                    Some(n) if n != self.model.size_bytes => return Err(Cut::Fatal(self.wrong_size(n))),
                    _ => self.model.size_bytes,
                }
            }
            416 => {
                // Nothing after `start`: the partial file may hold bytes of another version.
                self.restart().map_err(Cut::Fatal)?;
                return Err(Cut::Resumable(self.error("the server had no bytes after the partial file's end".into())));
            }
            404 | 410 => return Err(Cut::Fatal(self.error(format!("{url} does not exist there (HTTP {status})")))),
            401 | 403 => return Err(Cut::Fatal(self.error(format!("{} refused access (HTTP {status})", self.source)))),
            _ => return Err(Cut::Fatal(self.error(format!("{} answered HTTP {status}", self.source)))),
        };
        let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).filter(|e| !e.starts_with("W/"));
        let notes = PartialNotes { url: url.to_string(), etag: etag.map(str::to_string) };
        let _ = crate::paths::write_atomically(&self.notes_path, &serde_json::to_vec(&notes).expect("notes serialize"));

        let mut file = OpenOptions::new().create(true).append(true).open(&self.part).at(&self.part).map_err(Cut::Fatal)?;
        let before = self.hashed;
        loop {
            let chunk = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    let _ = file.sync_all();
                    return Err(Cut::Fatal(self.cancelled()));
                }
                c = tokio::time::timeout(timeout, response.chunk()) => c,
            };
            let got_some = self.hashed > before;
            let cut = |e: Error| if got_some { Cut::Resumable(e) } else { Cut::Fatal(e) };
            let bytes = match chunk {
                Err(_) => return Err(cut(self.error(format!("{} sent nothing for {} s", self.source, timeout.as_secs())))),
                Ok(Err(e)) => return Err(cut(self.transport_error(e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(b))) => b,
            };
            if self.hashed + bytes.len() as u64 > total_here {
                self.restart().map_err(Cut::Fatal)?;
                return Err(Cut::Fatal(self.error("the server sent more bytes than the file has".into())));
            }
            file.write_all(&bytes).map_err(|e| Cut::Fatal(self.write_error(e)))?;
            self.hasher.update(&bytes);
            self.hashed += bytes.len() as u64;
            record.bytes_received += bytes.len() as u64;
            self.report(Phase::Downloading, progress, false);
        }
        file.sync_all().map_err(|e| Cut::Fatal(self.write_error(e)))?;
        if self.hashed < self.model.size_bytes {
            let e = self.error(format!("{} closed the connection at {} of {}", self.source, mib(self.hashed), mib(self.model.size_bytes)));
            return Err(if self.hashed > before { Cut::Resumable(e) } else { Cut::Fatal(e) });
        }
        Ok(())
    }

    /// The hash of the complete file, or an error (and the partial file deleted) when it is
    /// not the catalog's.
    fn verified_hash(&mut self) -> Result<String> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if let Some(expected) = &self.model.sha256 {
            if *expected != sha256 {
                self.store.discard_partial(&self.model.file_name)?;
                return Err(self.error(format!(
                    "the file from {} has sha256 {sha256}, the catalog expects {expected}; the downloaded file was deleted \
                     (try again, or another source)",
                    self.source
                )));
            }
        }
        Ok(sha256)
    }

    fn install(&self, sha256: String) -> Result<InstalledModel> {
        let result = self.store.install_download(&self.part, &self.model.file_name, sha256, &self.model.id);
        if result.is_err() {
            // A file of the right size and hash that still is not a model we can run: nothing to resume.
            let _ = self.store.discard_partial(&self.model.file_name);
        } else {
            let _ = fs::remove_file(&self.notes_path);
        }
        result
    }

    fn report(&mut self, phase: Phase, progress: &mut (dyn FnMut(&PullProgress) + Send), force: bool) {
        let now = Instant::now();
        if !force && self.last_report.is_some_and(|t| now - t < PROGRESS_EVERY) {
            return;
        }
        self.last_report = Some(now);
        let fetched = self.hashed.saturating_sub(self.resumed_from);
        let secs = self.started.elapsed().as_secs_f64();
        let bytes_per_s = if phase == Phase::Downloading && secs > 0.0 { fetched as f64 / secs } else { 0.0 };
        let eta_s = (bytes_per_s > 0.0).then(|| ((self.model.size_bytes - self.hashed) as f64 / bytes_per_s).ceil() as u64);
        progress(&PullProgress {
            model: self.model.id.clone(),
            phase,
            source: self.source.clone(),
            done: self.hashed,
            total: self.model.size_bytes,
            resumed_from: self.resumed_from,
            bytes_per_s,
            eta_s,
        });
    }

    fn finish_progress(&mut self, progress: &mut (dyn FnMut(&PullProgress) + Send)) {
        self.report(Phase::Downloading, progress, true);
    }

    fn error(&self, reason: String) -> Error {
        Error::Download { model: self.model.id.clone(), reason }
    }

    fn cancelled(&self) -> Error {
        Error::DownloadCancelled { model: self.model.id.clone(), kept: self.part_len(), part: self.part.clone() }
    }

    fn wrong_size(&self, offered: u64) -> Error {
        self.error(format!(
            "{} offers a file of {offered} bytes, the catalog expects {} for {}; it is another file",
            self.source, self.model.size_bytes, self.model.file_name
        ))
    }

    fn write_error(&self, e: std::io::Error) -> Error {
        if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
            let available = fs4::available_space(self.store.dir()).unwrap_or(0);
            return Error::DiskFull { path: self.store.dir().to_path_buf(), needed: self.model.size_bytes - self.hashed, available };
        }
        Error::io(&self.part, e)
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        // A redirect the policy refused carries the policy's own message.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if let Some(r) = s.downcast_ref::<RedirectRefused>() {
                return self.error(format!("it redirects to a host the network policy refuses: {}", r.0));
            }
            source = s.source();
        }
        let reason = if e.is_timeout() {
            format!("{} did not answer within {} s", self.source, self.options.timeout.as_secs())
        } else if e.is_connect() {
            format!("{} cannot be reached (connection refused or no route)", self.source)
        } else {
            format!("the connection to {} failed: {e}", self.source)
        };
        self.error(reason)
    }
}

#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL); TOTAL is `None` for `*`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The partial download of a catalog model, if one was left: (bytes on disk, path).
pub fn partial_download(store: &ModelStore, model: &CatalogModel) -> Option<(u64, PathBuf)> {
    let part = store.partial_path(&model.file_name);
    fs::metadata(&part).ok().filter(|m| m.len() > 0).map(|m| (m.len(), part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_are_parsed() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
