use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const QUESTION: &str = "What does the Rust keyword `mut` mean?";

#[test]
fn ask_streams_json_events_ending_with_usage() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let out = sb.cmd().args(["ask", "--json", "--max-tokens", "40", QUESTION]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = json_lines(&out.stdout);
    let tokens: Vec<_> = events.iter().filter(|e| e["event"] == "token").collect();
    assert!(tokens.len() > 1, "{events:?}");
    let text: String = tokens.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(!text.trim().is_empty());
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{done}");
    assert!(done["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(done["usage"]["completion_tokens"].as_u64().unwrap() as usize, tokens.len());
    assert!(done["usage"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn ask_by_path_prints_text_and_leaves_no_hub_cache_in_home() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["ask", "--max-tokens", "16", "--model"]).arg(dev_model()).arg(QUESTION).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens"));
    // mistral.rs would create ~/.cache/huggingface; we keep it in the data folder.
    assert!(!sb.home().join(".cache").exists(), "something wrote to ~/.cache");
}

#[test]
fn ask_errors_are_clear() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["ask", QUESTION]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model is installed"));

    let out = sb.cmd().args(["ask", "--model", "/no/such/model.gguf", QUESTION]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model.gguf does not exist"));

    // A name that looks like a hub repo id is not fetched: it is an unknown model here.
    let out = sb.cmd().args(["ask", "--json", "--model", "Qwen/Qwen2.5-Coder-7B", QUESTION]).output().unwrap();
    assert!(!out.status.success());
    let events = json_lines(&out.stdout);
    assert_eq!(events.last().unwrap()["event"], "error");
    assert!(events.last().unwrap()["message"].as_str().unwrap().contains("does not exist"));

    let out = sb.cmd().args(["ask", "--model", "qwen2.5-coder-7b-instruct-q4_k_m", QUESTION]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not installed"));

    let out = sb.cmd().args(["ask", "--model"]).arg(model_file("gemma-3-270m-q4_k_m.gguf")).arg(QUESTION).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`gemma3`") && !err.contains("panicked"), "{err}");
}

#[test]
fn ctrl_c_stops_generation_and_reports_what_was_produced() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let mut child = sb
        .cmd()
        .args(["ask", "--json", "--max-tokens", "3000", "Count from 1 to 1000, one number per line."])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut tokens = 0;
    let mut last = String::new();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("\"token\"") {
            tokens += 1;
            if tokens == 5 {
                Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
            }
        }
        last = line;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let done: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["stop"], "cancelled");
    assert!(tokens < 200, "generation went on for {tokens} tokens after Ctrl-C");
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// The offline promise at its simplest: a network namespace with no interface but a
/// downed loopback, and the answer still comes.
#[test]
fn ask_works_with_no_network_at_all() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    let userns = !matches!(probe, Ok(s) if s.success());
    let mut cmd = Command::new("unshare");
    cmd.arg(if userns { "-rn" } else { "-n" });
    let inner = sb.cmd();
    cmd.arg(inner.get_program());
    cmd.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(["ask", "--json", "--max-tokens", "24", QUESTION]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "unshare/perimeter failed: {}", String::from_utf8_lossy(&out.stderr));
    let events = json_lines(&out.stdout);
    assert!(events.iter().any(|e| e["event"] == "token"));
    assert_eq!(events.last().unwrap()["event"], "done");
}
