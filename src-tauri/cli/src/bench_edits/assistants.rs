//! The two assistants the benchmark compares on the same model file: Perimeter's edit path
//! (in this process) and Aider (its own process, talking to `perimeter serve`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use perimeter_engine::assistant::{self, Exchange, RequestOptions};
use perimeter_engine::edit::{self, Applied, EditFormat, Proposals, Selection};
use perimeter_engine::index::ProjectIndex;
use perimeter_engine::inference::{CancellationToken, Model};
use serde::{Deserialize, Serialize};

/// What one try of one assistant did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TryReport {
    /// The solution files' bytes changed (false: no usable edit).
    pub edited: bool,
    /// Why nothing was written, when the assistant says (no file block, a held change…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_edit_reason: Option<String>,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
    /// Time the assistant took (model and editing), not the tests.
    pub seconds: f64,
    /// CPU seconds the assistant and the model server spent in that time (`cpu.rs`); absent in
    /// results written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    pub tests_passed: bool,
    pub tests_timed_out: bool,
    pub test_seconds: f64,
    /// The start of the test output, as a second try is shown it.
    #[serde(alias = "test_output_tail")]
    pub test_output_head: String,
}

/// Bytes of every solution file, to tell whether a try changed anything.
pub fn snapshot(workspace: &Path, files: &[String]) -> BTreeMap<String, Option<Vec<u8>>> {
    files.iter().map(|f| (f.clone(), std::fs::read(workspace.join(f)).ok())).collect()
}

/// Perimeter as a user runs `perimeter edit --apply`: index the project, retrieve, prompt,
/// parse, gate, apply what is not held.
pub struct Perimeter<'a> {
    pub model: &'a Model,
    pub format: Option<EditFormat>,
    pub max_tokens: usize,
    pub temperature: f64,
}

impl Perimeter<'_> {
    /// One try; returns the model's answer, for the next try's history.
    pub async fn attempt(
        &self,
        workspace: &Path,
        index_dir: &Path,
        history: &[Exchange],
        instruction: &str,
        solution: &[String],
        report: &mut TryReport,
    ) -> anyhow::Result<String> {
        let index = ProjectIndex::open(workspace, index_dir)?;
        index.update(&mut |_| {}, &CancellationToken::new())?;
        // The files named in the instruction are the ones to show, as Aider is given them.
        let options = RequestOptions {
            max_tokens: self.max_tokens,
            temperature: Some(self.temperature),
            max_context_tokens: None,
            retrieve: solution.len(),
        };
        let mut quiet = |_: &str| true;
        let proposal =
            assistant::propose_edit(self.model, &index, history, instruction, self.format, &options, &mut quiet, &CancellationToken::new())
                .await?;
        // The benchmark's own data folder for the project, as the app keeps one per project.
        let data = index_dir.parent().unwrap_or(index_dir);
        Proposals::new(data).save(&proposal)?;
        report.prompt_tokens = proposal.usage.prompt_tokens.unwrap_or(proposal.context.prompt_tokens);
        report.answer_tokens = proposal.usage.completion_tokens;
        if let Some(reason) = proposal.empty_reason() {
            report.no_edit_reason = Some(reason);
            return Ok(proposal.answer);
        }
        // A held change counts as no edit: a user would have to confirm it first.
        let history = edit::history(data);
        let Applied { held, .. } = edit::apply_proposal(index.root(), &history, &proposal, &Selection::All, false)?;
        if !held.is_empty() {
            report.no_edit_reason = Some(format!("held for confirmation: {}", held.join(", ")));
        }
        Ok(proposal.answer)
    }
}

/// `perimeter serve` with the same model file, for Aider to talk to.
pub struct Server {
    child: Child,
    pub base_url: String,
    pub model_id: String,
}

impl Server {
    /// The server's process id, to read its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(model_path: &Path, threads: Option<usize>, max_tokens: usize, port: u16) -> anyhow::Result<Server> {
        // Another server on the port would answer the readiness check while ours fails to
        // bind, and Aider would be measured against whatever model that one has loaded.
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!("port {port} is in use (another `perimeter serve`?): Aider would talk to that server; choose a free one with --port");
        }
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        if let Some(t) = threads {
            command.args(["--threads", &t.to_string()]);
        }
        command
            .arg("serve")
            .arg("--model")
            .arg(model_path)
            .args(["--port", &port.to_string(), "--max-tokens-limit", &max_tokens.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().context("starting perimeter serve")?;
        let mut server = Server { child, base_url: format!("http://127.0.0.1:{port}/v1"), model_id: String::new() };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(300) {
            if let Some(status) = server.child.try_wait()? {
                bail!("perimeter serve exited ({status}) before it answered; is port {port} free?");
            }
            if let Ok(body) = http_get(port, "/v1/models") {
                let v: serde_json::Value = serde_json::from_str(&body)?;
                server.model_id = v["data"][0]["id"].as_str().unwrap_or_default().to_string();
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("perimeter serve did not answer within 5 minutes")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.0 GET on loopback (the server's readiness check needs nothing more).
fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => bail!("not ready"),
    }
}

/// Aider (whole-file format, as its published Qwen figures) on the same exercises.
pub struct Aider {
    pub executable: PathBuf,
    pub base_url: String,
    pub model_id: String,
    pub context_length: usize,
    pub max_tokens: usize,
}

impl Aider {
    /// One try: the first starts a chat; the second restores it (Aider's benchmark keeps its
    /// chat between tries) and carries the test output.
    pub fn attempt(&self, workspace: &Path, message: &str, solution: &[String], first: bool, report: &mut TryReport) -> anyhow::Result<()> {
        let model = format!("openai/{}", self.model_id);
        let metadata = workspace.join(".aider.model.metadata.json");
        std::fs::write(
            &metadata,
            serde_json::json!({ &model: {
                "max_input_tokens": self.context_length, "max_tokens": self.max_tokens, "max_output_tokens": self.max_tokens,
                "input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "openai", "mode": "chat"
            }})
            .to_string(),
        )?;
        let message_file = workspace.join(".aider.message.md");
        std::fs::write(&message_file, message)?;
        let mut command = Command::new(&self.executable);
        command
            .args(["--model", &model, "--openai-api-base", &self.base_url, "--openai-api-key", "local"])
            .args(["--edit-format", "whole", "--yes-always", "--no-git", "--no-auto-commits", "--no-check-update"])
            .args(["--analytics-disable", "--no-show-model-warnings", "--no-pretty", "--no-stream", "--no-fancy-input"])
            .args(["--map-tokens", "0", "--no-suggest-shell-commands", "--no-detect-urls"])
            .arg("--model-metadata-file")
            .arg(&metadata)
            .arg("--message-file")
            .arg(&message_file)
            // Aider keeps its histories at the root of a git repository above the project when
            // there is one (a results folder inside a checkout): the second try would restore
            // every earlier exercise's chat. Each project keeps its own.
            .arg("--chat-history-file")
            .arg(workspace.join(".aider.chat.history.md"))
            .arg("--input-history-file")
            .arg(workspace.join(".aider.input.history"));
        if !first {
            command.arg("--restore-chat-history");
        }
        command
            .args(solution)
            .current_dir(workspace)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("AIDER_CHECK_UPDATE", "false")
            .stdin(Stdio::null());
        let output = command.output().with_context(|| format!("running {}", self.executable.display()))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        std::fs::write(workspace.join(if first { ".aider.output-1.txt" } else { ".aider.output-2.txt" }), &text)?;
        // No "Tokens:" line: Aider never got an answer (a bad argument, a server error); that
        // is the harness failing, not the model.
        if text.contains("has hit a token limit!") {
            // The model's answer ran to the limit: a failed try like any other, not the harness.
            report.no_edit_reason = Some("the answer reached the token limit".into());
            return Ok(());
        }
        let Some((sent, received)) = token_counts(&text) else {
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            bail!("aider got no answer from the model ({}): {}", output.status, tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
        };
        report.prompt_tokens = sent;
        report.answer_tokens = received;
        if !output.status.success() {
            report.no_edit_reason = Some(format!("aider exited with {}", output.status));
        }
        Ok(())
    }
}

/// Aider's "Tokens: 1.2k sent, 345 received." line, summed over the lines of one run.
fn token_counts(output: &str) -> Option<(usize, usize)> {
    let number = |s: &str| -> Option<usize> {
        let s = s.trim().replace(',', "");
        match s.strip_suffix('k') {
            Some(k) => k.parse::<f64>().ok().map(|v| (v * 1000.0).round() as usize),
            None => s.parse().ok(),
        }
    };
    let mut total: Option<(usize, usize)> = None;
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("Tokens: ") else { continue };
        let mut parts = rest.split(',');
        let sent = parts.next().and_then(|p| p.trim().strip_suffix(" sent")).and_then(number);
        let received = parts.next().and_then(|p| p.split_once(" received")).and_then(|(n, _)| number(n));
        if let (Some(s), Some(r)) = (sent, received) {
            let t = total.get_or_insert((0, 0));
            t.0 += s;
            t.1 += r;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aider_token_lines() {
        let out = "Applied edit to a.js\nTokens: 1.2k sent, 345 received.\nTokens: 900 sent, 12 received. Cost: $0.00\n";
        assert_eq!(token_counts(out), Some((2100, 357)));
        assert_eq!(token_counts("nothing here"), None);
    }
}
