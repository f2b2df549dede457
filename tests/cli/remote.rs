//! The company-server path: `perimeter ask --server` against a real `perimeter serve` on
//! loopback (allowed by the allowlist, refused without it with nothing on the wire), and
//! against a misbehaving server (5xx, a stream cut mid-answer, a stall, a wrong key, nothing
//! listening) for the messages a user gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const TOKEN: &str = "team-secret-7";

/// A `perimeter serve` with the dev model on a free loopback port, killed when dropped.
struct Served {
    child: Child,
    port: u16,
    sb: Sandbox,
}

impl Served {
    fn start() -> Served {
        let sb = Sandbox::new();
        sb.import_dev_model();
        let port = free_port();
        let child = sb
            .cmd()
            .args(["serve", "--port", &port.to_string(), "--token", TOKEN])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sb.home().join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let served = Served { child, port, sb };
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "perimeter serve did not start listening");
            std::thread::sleep(Duration::from_millis(200));
        }
        served
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server wrote on stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.sb.home().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One raw HTTP/1.1 exchange, for checking the server itself.
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn post(port: u16, token: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The body of a raw HTTP response, its chunks joined when it came in chunks.
fn body_of(reply: &str) -> String {
    let (head, mut rest) = reply.split_once("\r\n\r\n").unwrap();
    if !head.contains("Transfer-Encoding: chunked") {
        return rest.to_string();
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

fn ask(sb: &Sandbox, project: &std::path::Path, url: &str, key: Option<&str>, extra: &[&str]) -> Output {
    let mut c = sb.cmd();
    c.args(["ask", "--project"]).arg(project).args(["--server", url, "--max-tokens", "24"]).args(extra);
    match key {
        Some(k) => c.env("PERIMETER_API_KEY", k),
        None => c.env_remove("PERIMETER_API_KEY"),
    };
    c.arg("What is the sales tax rate?").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_server_speaks_the_openai_api_and_wants_its_token() {
    let s = Served::start();
    let models = http(s.port, &format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"));
    assert!(models.starts_with("HTTP/1.1 200") && models.contains("\"max_model_len\""), "{models}");
    let denied = http(s.port, "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");

    let body = r#"{"model":"x","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8}"#;
    let whole = post(s.port, TOKEN, body);
    assert!(whole.starts_with("HTTP/1.1 200") && whole.contains("\"chat.completion\"") && whole.contains("\"completion_tokens\""), "{whole}");

    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"Say hello."}]}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}"#;
    let streamed = post(s.port, TOKEN, body);
    assert!(streamed.contains("text/event-stream") && streamed.contains("chat.completion.chunk"), "{streamed}");
    assert!(streamed.contains("\"usage\"") && streamed.contains("data: [DONE]"), "{streamed}");

    let bad = post(s.port, TOKEN, r#"{"messages":[]}"#);
    assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("empty"), "{bad}");
}

#[test]
fn the_server_holds_an_answer_to_a_json_schema() {
    // What agent mode sends a company server (OpenAI's structured output). The dev model left
    // free says hello in words; held to the schema, it can only write the object.
    let s = Served::start();
    let schema = r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}"#;
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":24,"response_format":{{"type":"json_schema","json_schema":{{"name":"answer","schema":{schema}}}}}}}"#
    );
    let reply = post(s.port, TOKEN, &body);
    let json: serde_json::Value = serde_json::from_str(&body_of(&reply)).unwrap();
    let content = json["choices"][0]["message"]["content"].as_str().unwrap();
    let answer: serde_json::Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("not the schema's JSON ({e}): {content}"));
    assert!(answer["n"].is_i64() && answer.as_object().unwrap().len() == 1, "{content}");
}

/// A client that leaves while its answer is computed (a timeout, Ctrl-C) must not keep the model
/// busy for nobody: the server notices from its heartbeat and stops the answer.
#[test]
fn an_answer_whose_client_has_gone_is_stopped() {
    let s = Served::start();
    // Held to a schema of 500 numbers, the dev model cannot end its answer within the seconds
    // the heartbeat takes to notice (an answer that ran to its end would log nothing).
    let schema = r#"{"type":"array","items":{"type":"integer"},"minItems":500}"#;
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"List numbers."}}],"max_tokens":4000,"response_format":{{"type":"json_schema","json_schema":{{"name":"n","schema":{schema}}}}}}}"#
    );
    let mut client = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).unwrap();
    // The status line comes at once, then a heartbeat byte while the answer is computed.
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.log().contains("a client went away") {
        assert!(Instant::now() < deadline, "the answer went on without its client; server log: {}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    // And a client that stays gets its whole answer, its end marked: a client that keeps the
    // connection alive (Aider's does) must not wait for the connection to close.
    let body = r#"{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":8}"#;
    let mut client = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.ends_with(b"\r\n0\r\n\r\n") {
        let n = client.read(&mut buf).expect("the answer's end never came on a kept-alive connection");
        assert!(n > 0, "the connection closed before the answer's end: {}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    let json: serde_json::Value = serde_json::from_str(&body_of(&String::from_utf8(reply).unwrap())).unwrap();
    assert!(json["choices"][0]["message"]["content"].is_string(), "{json}");
}

#[test]
fn serving_beyond_loopback_needs_a_token() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["serve", "--host", "0.0.0.0", "--port", "1"]).env_remove("PERIMETER_SERVE_TOKEN").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give --token"), "{}", stderr(&out));
}

#[test]
fn a_question_goes_to_an_allowed_server_and_is_logged() {
    let s = Served::start();
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let allow = sb.cmd().args(["network", "allow", &format!("127.0.0.1:{}", s.port)]).output().unwrap();
    assert!(allow.status.success(), "{}", stderr(&allow));

    let out = ask(&sb, &shop, &s.url(), Some(TOKEN), &["--show-context"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The answer, then the context that was retrieved here and sent.
    assert!(stdout.split("\ncontext:").next().is_some_and(|a| !a.trim().is_empty()), "no answer: {stdout}");
    assert!(stdout.contains("shop/pricing.py"), "{stdout}");
    let err = stderr(&out);
    assert!(err.contains("Sent to the company inference server 127.0.0.1"), "{err}");

    let log = sb.cmd().args(["network", "log", "--json"]).output().unwrap();
    let records: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "the model list, then the question: {records:?}");
    assert!(records.iter().all(|r| r["host"] == "127.0.0.1" && r["outcome"] == "ok"), "{records:?}");
    assert!(records[1]["bytes_sent"].as_u64().unwrap() > 500 && records[1]["bytes_received"].as_u64().unwrap() > 0);

    let wrong = ask(&sb, &shop, &s.url(), Some("not-the-key"), &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("refused the API key (HTTP 401"), "{}", stderr(&wrong));
}

#[test]
fn a_refused_server_sees_no_connection_at_all() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    // Offline (the default), then an allowlist that names another host.
    for allow in [None, Some("llm.corp.example")] {
        if let Some(host) = allow {
            assert!(sb.cmd().args(["network", "allow", host]).output().unwrap().status.success());
        }
        let out = ask(&sb, &shop, &url, None, &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("company inference server needs a connection to 127.0.0.1") && err.contains("network policy refuses"), "{err}");
        assert!(err.contains("perimeter network allow 127.0.0.1"), "{err}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "the server saw a connection");
    }
    let log = sb.cmd().args(["network", "log"]).output().unwrap();
    assert!(String::from_utf8_lossy(&log.stdout).contains("nothing has left this machine"));
}

/// A server that lists one model, then answers the chat request with `reply` (raw bytes,
/// written slowly enough to arrive in pieces), then closes — or never answers when `None`.
fn fake_server(reply: Option<&'static str>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let handle = std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if i == 0 {
                let list = r#"{"object":"list","data":[{"id":"fake","object":"model","max_model_len":4096}]}"#;
                // Connection: close, so that the chat request comes on a connection of its own.
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close";
                write!(stream, "{head}\r\nContent-Length: {}\r\n\r\n{list}", list.len()).unwrap();
                continue;
            }
            match reply {
                Some(r) => {
                    for piece in r.as_bytes().chunks(40) {
                        let _ = stream.write_all(piece);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                None => std::thread::sleep(Duration::from_secs(6)),
            }
        }
    });
    (url, handle)
}

#[test]
fn remote_failures_get_clear_messages_and_a_cut_answer_is_kept() {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    assert!(sb.cmd().args(["network", "allow", "127.0.0.1"]).output().unwrap().status.success());

    let (url, h) = fake_server(Some("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 18\r\nConnection: close\r\n\r\nall GPUs are busy."));
    let out = ask(&sb, &shop, &url, None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the server failed (HTTP 503 Service Unavailable): all GPUs are busy."), "{}", stderr(&out));
    h.join().unwrap();

    // Two pieces of the answer, then the connection drops without [DONE].
    let cut = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
               data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"The rate is \"}}]}\n\n\
               data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"8.25\"}}]}\n\n";
    let (url, h) = fake_server(Some(cut));
    let out = ask(&sb, &shop, &url, None, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("The rate is 8.25"));
    assert!(stderr(&out).contains("connection to the server broke"), "{}", stderr(&out));
    h.join().unwrap();
    // The partial answer is kept in the conversation.
    let convo = sb.cmd().args(["conversations", "--json", "--project"]).arg(&shop).output().unwrap();
    assert!(String::from_utf8_lossy(&convo.stdout).contains("\"turns\": 1") || String::from_utf8_lossy(&convo.stdout).contains("\"turns\":1"));

    let (url, h) = fake_server(None);
    let out = ask(&sb, &shop, &url, None, &["--server-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not answer within 2 s"), "{}", stderr(&out));
    h.join().unwrap();

    let nothing = format!("http://127.0.0.1:{}", free_port());
    let out = ask(&sb, &shop, &nothing, None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot be reached"), "{}", stderr(&out));

    let log = sb.cmd().args(["network", "log", "--json"]).output().unwrap();
    let records: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    assert!(records.as_array().unwrap().iter().any(|r| r["outcome"].as_str().unwrap().starts_with("cut mid-answer")), "{records}");
}

#[test]
fn the_api_key_comes_from_the_os_keychain() {
    // A real Secret Service: a private D-Bus session with GNOME Keyring, unlocked, in the
    // sandbox's HOME — what a Linux desktop has.
    let s = Served::start();
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    assert!(sb.cmd().args(["network", "allow", &format!("127.0.0.1:{}", s.port)]).output().unwrap().status.success());
    let bin = sb.cmd().get_program().to_owned();
    let script = format!(
        r#"set -e
printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
# The daemon takes its bus name after it returns; a request before that starts a second
# daemon, which can read the keyring file while the first still writes it (seen under load).
for i in $(seq 100); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true" && break
  sleep 0.1
done
P="{bin}"
printf '%s\n' '{TOKEN}' | "$P" --threads 2 network key {url}
"$P" --threads 2 ask --project {shop} --server {url} --max-tokens 8 "What is the sales tax rate?" >/dev/null
echo asked-with-stored-key
"$P" --threads 2 network forget-key {url}
if "$P" --threads 2 ask --project {shop} --server {url} --max-tokens 8 "What is the sales tax rate?" 2>err.txt; then exit 1; fi
grep -q "refused the API key (HTTP 401" err.txt && echo refused-without-key
"#,
        bin = bin.to_string_lossy(),
        url = s.url(),
        shop = shop.display(),
    );
    let mut c = Command::new("dbus-run-session");
    c.args(["--", "bash", "-c", &script]).current_dir(sb.dir.path());
    copy_env(&sb.cmd(), &mut c);
    let out = c.env_remove("PERIMETER_API_KEY").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("is in the OS keychain") && stdout.contains("asked-with-stored-key"), "{stdout}");
    assert!(stdout.contains("removed the key") && stdout.contains("refused-without-key"), "{stdout}");
}
