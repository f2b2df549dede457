//! A model on the company's own inference server (vLLM, `mistralrs serve`, `perimeter serve`…)
//! through the OpenAI-compatible chat-completions API, streamed. Retrieval and prompt assembly
//! stay on this machine; only the assembled prompt is sent. Every connection is checked
//! against the network policy first and written to the connection log.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::{ms, rate, CancellationToken, ChatMessage, Generation, GenerationParams, StopReason, TokenSink, Usage};
use crate::network::{ConnectionLog, ConnectionRecord, NetworkPolicy};
use crate::{Error, Result};

const PURPOSE: &str = "company inference server";

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Base URL, e.g. `https://llm.corp.example` or `http://127.0.0.1:8080` (`/v1` is added).
    pub url: String,
    /// The model to ask for; the server's first model when `None`.
    pub model: Option<String>,
    /// Sent as a bearer token; from the keychain or `PERIMETER_API_KEY`.
    pub api_key: Option<String>,
    /// Context window when the server does not say (vLLM and `perimeter serve` report it).
    pub context_length: Option<usize>,
    /// Longest wait for the connection, and for each piece of the answer.
    pub timeout: Duration,
}

impl RemoteOptions {
    /// Options for the server at `url`, with the defaults for the rest.
    pub fn new(url: &str) -> RemoteOptions {
        RemoteOptions { url: url.to_string(), model: None, api_key: None, context_length: None, timeout: Duration::from_secs(60) }
    }
}

/// A model on an OpenAI-compatible server, reached under the network policy and logged.
pub struct RemoteModel {
    base: reqwest::Url,
    host: String,
    port: u16,
    model: String,
    context_length: usize,
    options: RemoteOptions,
    client: reqwest::Client,
    policy: NetworkPolicy,
    log: ConnectionLog,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
    /// vLLM's name for the context window; `perimeter serve` reports it too.
    max_model_len: Option<usize>,
}

impl RemoteModel {
    /// Checks the policy, then asks the server which models it has (and their context window).
    pub async fn connect(options: RemoteOptions, policy: NetworkPolicy, log: ConnectionLog) -> Result<RemoteModel> {
        let bad_url = |why: &str| Error::Remote { url: options.url.clone(), reason: why.to_string() };
        let (mut base, host, port) = parse_server(&options.url)?;
        // Refused here, before any socket exists.
        policy.check(&host, port, PURPOSE)?;
        if !base.path().ends_with("/v1") {
            let path = format!("{}/v1", base.path().trim_end_matches('/'));
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            // A proxy would be a connection the policy did not see.
            .no_proxy()
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            .build()
            .map_err(|e| bad_url(&e.to_string()))?;
        let mut remote = RemoteModel { base, host, port, model: String::new(), context_length: 0, options, client, policy, log };

        let mut record = ConnectionRecord::new(&remote.host, remote.port, PURPOSE);
        let result = remote.list_models(&mut record).await;
        remote.finish(record, result.as_ref().err());
        let list = result?;
        let entry = match &remote.options.model {
            Some(name) => list.data.into_iter().find(|m| m.id == *name).ok_or_else(|| Error::Remote {
                url: remote.options.url.clone(),
                reason: format!("the server has no model `{name}`"),
            })?,
            None => list.data.into_iter().next().ok_or_else(|| Error::Remote {
                url: remote.options.url.clone(),
                reason: "the server lists no model".to_string(),
            })?,
        };
        remote.context_length = entry.max_model_len.or(remote.options.context_length).unwrap_or(8192);
        remote.model = entry.id;
        Ok(remote)
    }

    async fn list_models(&self, record: &mut ConnectionRecord) -> Result<ModelList> {
        let response = self.send(self.client.get(self.endpoint("models"))).await?;
        let body = response.bytes().await.map_err(|e| self.transport_error(e))?;
        record.bytes_received = body.len() as u64;
        serde_json::from_slice(&body).map_err(|e| Error::Remote {
            url: self.options.url.clone(),
            reason: format!("/v1/models did not answer as an OpenAI-compatible server does ({e})"),
        })
    }

    fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        u.set_path(&format!("{}/{path}", self.base.path()));
        u
    }

    /// Sends a request with the key, turning transport failures and HTTP errors into messages.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let request = match &self.options.api_key {
            Some(k) => request.bearer_auth(k),
            None => request,
        };
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.chars().take(300).collect();
        let reason = match status.as_u16() {
            401 | 403 => format!(
                "the server refused the API key (HTTP {status}); check the key with your administrator{}",
                if self.options.api_key.is_none() { " (none was given)" } else { "" }
            ),
            404 => format!("the server has no OpenAI-compatible API at {} (HTTP 404)", self.base),
            s if s >= 500 => format!("the server failed (HTTP {status}): {detail}"),
            _ => format!("the server answered HTTP {status}: {detail}"),
        };
        Err(Error::Remote { url: self.options.url.clone(), reason })
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        let reason = if e.is_timeout() {
            format!("the server did not answer within {} s", self.options.timeout.as_secs())
        } else if e.is_connect() {
            "the server cannot be reached (connection refused or no route); is it running, and is the URL right?".to_string()
        } else {
            format!("the connection failed: {e}")
        };
        Error::Remote { url: self.options.url.clone(), reason }
    }

    fn finish(&self, mut record: ConnectionRecord, error: Option<&Error>) {
        if let Some(e) = error {
            record.outcome = e.to_string();
        }
        // The log is the user's record; failing to write it must not hide the answer.
        let _ = self.log.record(&record);
    }

    /// The server's model name.
    pub fn name(&self) -> String {
        self.model.clone()
    }

    /// The server's host name (what the network log and the UI show).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The context window the server reports, or the one configured.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Streams a reply. A connection cut mid-answer keeps the text received so far
    /// ([`StopReason::ConnectionLost`]).
    pub async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        sink: &mut (dyn TokenSink + Send),
        cancel: &CancellationToken,
    ) -> Result<Generation> {
        // The policy may have changed since connecting.
        self.policy.check(&self.host, self.port, PURPOSE)?;
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature.unwrap_or(0.0),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(schema) = &params.json_schema {
            // OpenAI's structured output, which vLLM and `perimeter serve` also take.
            body["response_format"] = json!({ "type": "json_schema", "json_schema": { "name": "answer", "schema": schema } });
        }
        let bytes = serde_json::to_vec(&body).expect("a request serializes");
        let mut record = ConnectionRecord::new(&self.host, self.port, PURPOSE);
        record.bytes_sent = bytes.len() as u64;
        let started = Instant::now();
        let request = self.client.post(self.endpoint("chat/completions")).header("content-type", "application/json").body(bytes);
        let response = match self.send(request).await {
            Ok(r) => r,
            Err(e) => {
                self.finish(record, Some(&e));
                return Err(e);
            }
        };
        let mut stream = SseText::default();
        let mut text = String::new();
        let mut first_token = None;
        let mut stop = StopReason::EndOfText;
        let mut usage_reported: Option<(usize, usize)> = None;
        let mut response = response;
        let mut lost: Option<String> = None;
        let mut saw_finish = false;
        'read: loop {
            let chunk = tokio::select! {
                biased;
                _ = cancel.cancelled() => { stop = StopReason::Cancelled; break 'read; }
                c = response.chunk() => c,
            };
            let bytes = match chunk {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    lost = Some(self.transport_error(e).to_string());
                    break;
                }
            };
            record.bytes_received += bytes.len() as u64;
            for event in stream.push(&bytes) {
                match event {
                    SseEvent::Done => break 'read,
                    SseEvent::Data(v) => {
                        // An error in the middle of a stream (vLLM and `perimeter serve` send one).
                        if let Some(msg) = v.pointer("/error/message").and_then(|m| m.as_str()) {
                            lost = Some(format!("the server reported an error: {msg}"));
                            break 'read;
                        }
                        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                            let n = |k: &str| u.get(k).and_then(|x| x.as_u64()).unwrap_or(0) as usize;
                            usage_reported = Some((n("prompt_tokens"), n("completion_tokens")));
                        }
                        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else { continue };
                        if let Some(piece) = choice.pointer("/delta/content").and_then(|c| c.as_str()).filter(|p| !p.is_empty()) {
                            first_token.get_or_insert_with(|| started.elapsed());
                            text.push_str(piece);
                            if !sink.token(piece) {
                                stop = StopReason::Cancelled;
                                break 'read;
                            }
                        }
                        if let Some(reason) = choice.get("finish_reason").and_then(|r| r.as_str()) {
                            stop = if reason == "length" { StopReason::Length } else { StopReason::EndOfText };
                            saw_finish = true;
                        }
                    }
                }
            }
            if stream.finished {
                break;
            }
        }
        if lost.is_none() && stop != StopReason::Cancelled && !stream.finished && !saw_finish {
            lost = Some("the server closed the connection before the end of the answer".to_string());
        }
        if let Some(why) = &lost {
            stop = StopReason::ConnectionLost;
            record.outcome = format!("cut mid-answer: {why}");
        }
        let _ = self.log.record(&record);
        let total = started.elapsed();
        let completion = usage_reported.map_or_else(|| text.chars().count().div_ceil(4), |u| u.1);
        let usage = Usage {
            prompt_tokens: usage_reported.map(|u| u.0),
            completion_tokens: completion,
            time_to_first_token_ms: first_token.map(ms),
            prompt_tokens_per_s: None,
            decode_tokens_per_s: first_token.and_then(|f| rate(completion.saturating_sub(1), (total - f).as_secs_f64())),
            total_ms: ms(total),
        };
        Ok(Generation { text, stop, usage })
    }
}

/// The server's URL, host and port; `Err` for anything but an http(s) URL with a host.
fn parse_server(url: &str) -> Result<(reqwest::Url, String, u16)> {
    let bad = |why: String| Error::Remote { url: url.to_string(), reason: why };
    let base = reqwest::Url::parse(url.trim_end_matches('/'))
        .map_err(|e| bad(format!("not a URL ({e}); write it as https://host[:port]")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// servers are supported".to_string()));
    }
    let host = base.host_str().ok_or_else(|| bad("the URL has no host".to_string()))?.to_string();
    let port = base.port_or_known_default().unwrap_or(443);
    Ok((base, host, port))
}

/// How a server is named in the keychain and the allowlist: `host:port`.
pub fn server_id(url: &str) -> Result<String> {
    let (_, host, port) = parse_server(url)?;
    Ok(format!("{host}:{port}"))
}

/// Server-sent events, parsed as bytes arrive (an event may be split across chunks).
#[derive(Default)]
struct SseText {
    pending: Vec<u8>,
    finished: bool,
}

enum SseEvent {
    Data(serde_json::Value),
    Done,
}

impl SseText {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                self.finished = true;
                events.push(SseEvent::Done);
            } else if let Ok(v) = serde_json::from_str(data) {
                events.push(SseEvent::Data(v));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut s = SseText::default();
        assert!(s.push(b"data: {\"choices\":[{\"delta\":{\"con").is_empty());
        let e = s.push(b"tent\":\"hi\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\n");
        assert_eq!(e.len(), 2);
        assert!(matches!(&e[0], SseEvent::Data(v) if v.pointer("/choices/0/delta/content").unwrap() == "hi"));
        assert!(matches!(e[1], SseEvent::Done) && s.finished);
    }
}

