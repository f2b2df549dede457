//! A small HTTP/1.1 file server on loopback for the download tests: it serves the development
//! model with range requests, and can misbehave on purpose (cut, stall, ignore ranges, 404,
//! corrupt a byte, throttle, redirect). It records every request it sees.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    Normal,
    /// The first response stops after this many bytes (the connection closes); then normal.
    CutOnceAt(u64),
    /// Every response stops sending at this offset and holds the connection open.
    StallAt(u64),
    /// Always the whole file with 200, whatever Range says; the first response is cut half-way.
    IgnoreRange,
    NotFound,
    /// One byte in the middle differs from the real file.
    Corrupt,
    /// After the first 4 MiB, 256 KiB every 50 ms (about 5 MiB/s).
    Slow,
    /// 302 to this URL.
    RedirectTo(String),
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// The first byte asked for by a `Range: bytes=N-` header.
    pub range_from: Option<u64>,
}

pub struct FileServer {
    pub port: u16,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    body_bytes_sent: Arc<AtomicU64>,
}

impl FileServer {
    /// Serves `bytes` at `/models/<file_name>` (and any other path: 404).
    pub fn start(file_name: &str, bytes: Arc<Vec<u8>>, behaviour: Behaviour) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = FileServer {
            port,
            behaviour: Arc::new(Mutex::new(behaviour)),
            seen: Arc::default(),
            body_bytes_sent: Arc::default(),
        };
        let (behaviour, seen, sent) = (server.behaviour.clone(), server.seen.clone(), server.body_bytes_sent.clone());
        let path = format!("/models/{file_name}");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (behaviour, seen, sent, bytes, path) = (behaviour.clone(), seen.clone(), sent.clone(), bytes.clone(), path.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &path, &bytes, &behaviour, &seen, &sent);
                });
            }
        });
        server
    }

    pub fn url(&self, file_name: &str) -> String {
        format!("http://127.0.0.1:{}/models/{file_name}", self.port)
    }

    pub fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Body bytes written to clients so far, over all requests.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent.load(Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    path: &str,
    bytes: &[u8],
    behaviour: &Mutex<Behaviour>,
    seen: &Mutex<Vec<Seen>>,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_from = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range_from = value.trim().strip_prefix("bytes=").and_then(|r| r.split('-').next()).and_then(|n| n.parse().ok());
            }
        }
    }
    let first_request = {
        let mut s = seen.lock().unwrap();
        s.push(Seen { path: target.clone(), range_from });
        s.len() == 1
    };
    let b = behaviour.lock().unwrap().clone();
    let mut out = stream;
    if let Behaviour::RedirectTo(to) = &b {
        return write!(out, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    if target != path || b == Behaviour::NotFound {
        return write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
    }
    let total = bytes.len() as u64;
    let start = match (&b, range_from) {
        (Behaviour::IgnoreRange, _) | (_, None) => 0,
        (_, Some(n)) => n.min(total),
    };
    if start > 0 {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{total}\r\nContent-Length: {}\r\nETag: \"dev-model-1\"\r\nConnection: close\r\n\r\n",
            total - 1,
            total - start
        )?;
    } else {
        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\nETag: \"dev-model-1\"\r\nConnection: close\r\n\r\n")?;
    }
    let stop_at = match &b {
        Behaviour::CutOnceAt(n) if first_request => *n,
        Behaviour::IgnoreRange if first_request => total / 2,
        Behaviour::StallAt(n) => *n,
        _ => total,
    };
    let mut at = start;
    while at < stop_at.max(start) {
        let slow = b == Behaviour::Slow && at >= 4 << 20;
        let step = if slow { 256 << 10 } else { 1 << 20 };
        let end = (at + step).min(stop_at);
        let mut piece = bytes[at as usize..end as usize].to_vec();
        if b == Behaviour::Corrupt && (at..end).contains(&(total / 2)) {
            piece[(total / 2 - at) as usize] ^= 0xff;
        }
        out.write_all(&piece)?;
        sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
        at = end;
        if slow {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    out.flush()?;
    if matches!(b, Behaviour::StallAt(_)) {
        std::thread::sleep(Duration::from_secs(120));
    }
    Ok(())
}
