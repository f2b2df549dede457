//! `perimeter serve`: the in-process model behind an OpenAI-compatible API
//! (`GET /v1/models`, `POST /v1/chat/completions`, streamed or not), so one workstation with a
//! GPU can serve a small team, and so the remote path can be tested against a real server.
//! Loopback only unless a bearer token is set.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use clap::Args;
use perimeter_engine::inference::{
    CancellationToken, ChatMessage, ComputeDtype, Generation, GenerationParams, LoadOptions, LocalModel, Role, StopReason,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::load::load_model;

#[derive(Args)]
pub struct ServeArgs {
    /// An installed model's name, or the path of a .gguf file (default: the one chosen with
    /// `perimeter models use` or in the app, else the largest installed).
    #[arg(long)]
    model: Option<String>,
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Bearer token clients must send (`Authorization: Bearer TOKEN`); also read from
    /// PERIMETER_SERVE_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// Most tokens one answer may take, whatever a client asks for.
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: usize,
    #[arg(long, default_value = "auto")]
    dtype: ComputeDtype,
}

/// Requests larger than this are refused (a prompt of a few hundred thousand tokens at most).
const MAX_BODY: u64 = 8 << 20;

struct Shared {
    model: LocalModel,
    name: String,
    token: Option<String>,
    max_tokens_limit: usize,
    runtime: tokio::runtime::Handle,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = args.token.clone().or_else(|| std::env::var("PERIMETER_SERVE_TOKEN").ok()).filter(|t| !t.is_empty());
    let loopback = args.host == "localhost" || args.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && token.is_none() {
        bail!(
            "listening on {} would serve anyone who can reach this machine; give --token TOKEN (or PERIMETER_SERVE_TOKEN) \
             and have clients send it as a bearer token, or keep the default 127.0.0.1",
            args.host
        );
    }
    let options = LoadOptions { dtype: args.dtype, ..LoadOptions::default() };
    let model = load_model(args.model.as_deref(), &options, true).await?;
    let server = Server::http((args.host.as_str(), args.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let shared = Arc::new(Shared {
        name: model.name(),
        model,
        token,
        max_tokens_limit: args.max_tokens_limit,
        runtime: tokio::runtime::Handle::current(),
    });
    eprintln!(
        "serving {} on http://{}:{}/v1 ({}) — Ctrl-C stops",
        shared.name,
        args.host,
        args.port,
        if shared.token.is_some() { "bearer token required" } else { "loopback only, no token" }
    );
    // tiny_http blocks; each request gets its own thread, generation runs on the runtime.
    tokio::task::spawn_blocking(move || {
        for request in server.incoming_requests() {
            let shared = shared.clone();
            std::thread::spawn(move || handle(&shared, request));
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn handle(shared: &Shared, mut request: Request) {
    if let Some(expected) = &shared.token {
        let given = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_string());
        if !given.as_deref().and_then(|g| g.strip_prefix("Bearer ")).is_some_and(|g| same(g.as_bytes(), expected.as_bytes())) {
            return error(request, 401, "invalid_api_key", "a valid bearer token is required");
        }
    }
    let path = request.url().split('?').next().unwrap_or("").trim_end_matches('/').to_string();
    match (request.method(), path.as_str()) {
        (Method::Get, "/v1/models") => {
            let body = json!({"object": "list", "data": [{
                "id": shared.name, "object": "model", "owned_by": "perimeter",
                "max_model_len": shared.model.context_length(),
            }]});
            respond_json(request, 200, &body)
        }
        (Method::Post, "/v1/chat/completions") => {
            let mut body = Vec::new();
            let read = request.as_reader().take(MAX_BODY + 1).read_to_end(&mut body);
            if read.is_err() || body.len() as u64 > MAX_BODY {
                return error(request, 413, "invalid_request_error", "the request body is too large or unreadable");
            }
            match parse_chat(&body, shared) {
                Ok(chat) => complete(shared, request, chat),
                Err(e) => error(request, 400, "invalid_request_error", &e.to_string()),
            }
        }
        _ => error(request, 404, "not_found", "Perimeter serves GET /v1/models and POST /v1/chat/completions"),
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Chat {
    messages: Vec<ChatMessage>,
    params: GenerationParams,
    stream: bool,
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<WireMessage>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// OpenAI's structured output: `{"type": "json_schema", "json_schema": {"schema": …}}`.
    response_format: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Value,
}

fn parse_chat(body: &[u8], shared: &Shared) -> anyhow::Result<Chat> {
    let r: ChatRequest = serde_json::from_slice(body).context("the body is not a chat-completions request")?;
    let mut messages = Vec::new();
    for m in r.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => bail!("unsupported message role `{other}`"),
        };
        // A string, or OpenAI's list of parts (text parts only).
        let content = match m.content {
            Value::String(s) => s,
            Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(""),
            Value::Null => String::new(),
            _ => bail!("message content must be a string or a list of text parts"),
        };
        messages.push(ChatMessage { role, content });
    }
    if messages.is_empty() {
        bail!("`messages` is empty");
    }
    // A client that names no limit (Aider does not) gets the server's: OpenAI's API means "until
    // the answer ends" there, and a smaller default cut whole-file answers off mid-file.
    let max_tokens = r.max_completion_tokens.or(r.max_tokens).unwrap_or(shared.max_tokens_limit).clamp(1, shared.max_tokens_limit);
    // Temperature 0 (or none) is greedy decoding, as OpenAI clients mean it.
    let temperature = r.temperature.filter(|t| *t > 0.0);
    Ok(Chat {
        messages,
        params: GenerationParams { max_tokens, temperature, json_schema: r.response_format.and_then(|f| f.pointer("/json_schema/schema").cloned()) },
        stream: r.stream,
        include_usage: r.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn complete(shared: &Shared, request: Request, chat: Chat) {
    let id = format!("chatcmpl-{}", perimeter_engine::records::new_id());
    let created = perimeter_engine::records::now();
    // The response is written by hand on the raw connection, its head first, so that a
    // heartbeat can go out while the answer is computed (see `Heartbeat`).
    let out: Out = Arc::new(Mutex::new(request.into_writer()));
    // The whole answer goes in chunks, so its end is marked: tiny_http keeps a client's
    // keep-alive connection open after the response, and a client reading to the end of the
    // connection would wait for ever. (A stream ends with its `[DONE]` event.)
    let content_type = if chat.stream { "text/event-stream\r\nCache-Control: no-cache" } else { "application/json\r\nTransfer-Encoding: chunked" };
    if !send(&out, format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n").as_bytes()) {
        return;
    }
    let cancel = CancellationToken::new();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": shared.name,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let result = {
        // JSON may start with spaces; an SSE line that starts with a colon is a comment.
        let _heartbeat = Heartbeat::start(out.clone(), if chat.stream { b": \n\n" } else { b"1\r\n \r\n" }, cancel.clone());
        if chat.stream && !send(&out, &event(&chunk(json!({"role": "assistant", "content": ""}), Value::Null))) {
            return;
        }
        let mut sink = |piece: &str| !chat.stream || send(&out, &event(&chunk(json!({"content": piece}), Value::Null)));
        shared.runtime.block_on(shared.model.generate(&chat.messages, &chat.params, &mut sink, &cancel))
    };
    match result {
        Ok(g) if g.stop == StopReason::Cancelled => {
            eprintln!("a client went away: its answer was stopped after {} tokens", g.usage.completion_tokens);
        }
        Ok(g) if chat.stream => {
            send(&out, &event(&chunk(json!({}), json!(finish_reason(&g)))));
            if chat.include_usage {
                let u = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": shared.name,
                               "choices": [], "usage": usage(&g)});
                send(&out, &event(&u));
            }
            send(&out, b"data: [DONE]\n\n");
        }
        Ok(g) => {
            send(&out, &last_chunk(&json!({
                "id": id, "object": "chat.completion", "created": created, "model": shared.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": finish_reason(&g)}],
                "usage": usage(&g),
            })));
        }
        // The status line has gone out: the error is the body (or the stream's last event).
        Err(e) => {
            let body = json!({"error": {"message": e.to_string(), "type": "server_error"}});
            send(&out, &if chat.stream { event(&body) } else { last_chunk(&body) });
        }
    }
}

/// `body` as the last chunks of a chunked response.
fn last_chunk(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes()
}

/// The raw connection of one response, shared by the answer and its heartbeat.
type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes and flushes; false when the client has gone.
fn send(out: &Out, bytes: &[u8]) -> bool {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    out.write_all(bytes).and_then(|_| out.flush()).is_ok()
}

/// While an answer is computed (a long prompt can take minutes before its first token), bytes
/// the client ignores go out every few seconds. A write that fails means the client has gone
/// (it timed out, or was stopped), and the answer is cancelled: otherwise it would hold the
/// model for nobody while the client's retry waits behind it. The bytes also keep a client's
/// read timeout from firing on an answer that is merely slow.
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

impl Heartbeat {
    fn start(out: Out, beat: &'static [u8], cancel: CancellationToken) -> Heartbeat {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                if !send(&out, beat) {
                    cancel.cancel();
                    return;
                }
            }
        });
        Heartbeat { stop, thread: Some(thread) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn event(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn finish_reason(g: &Generation) -> &'static str {
    match g.stop {
        StopReason::Length => "length",
        _ => "stop",
    }
}

fn usage(g: &Generation) -> Value {
    let prompt = g.usage.prompt_tokens.unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": g.usage.completion_tokens,
           "total_tokens": prompt + g.usage.completion_tokens})
}

fn respond_json(request: Request, status: u16, body: &Value) {
    let header = Header::from_bytes("Content-Type", "application/json").expect("valid header");
    let _ = request.respond(Response::from_string(body.to_string()).with_status_code(status).with_header(header));
}

fn error(request: Request, status: u16, kind: &str, message: &str) {
    respond_json(request, status, &json!({"error": {"message": message, "type": kind}}));
}
