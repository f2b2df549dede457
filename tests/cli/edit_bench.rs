//! `perimeter bench edits` on the three small exercises of tests/fixtures/edit-bench (one each
//! in JavaScript, Rust and Go, written for this test in Exercism's layout): the harness tells
//! a reference solution from a stub, and a real run with Qwen2.5-Coder-0.5B records every try,
//! hides the tests from the model, and resumes instead of repeating work; the agent runs the
//! visible tests itself, confined, and the hidden ones judge.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::util::*;

fn exercises() -> PathBuf {
    repo_root().join("tests/fixtures/edit-bench")
}

/// The sandbox's `perimeter bench edits`, with the toolchains of the real user (the sandbox
/// moves HOME, where rustup and cargo live) and the JavaScript test tools setup.sh installs.
fn bench(sb: &Sandbox) -> Command {
    let home = std::env::var("HOME").unwrap();
    let modules = std::env::var("PERIMETER_BENCH_JS_MODULES")
        .expect("PERIMETER_BENCH_JS_MODULES is not set: run the tests through scripts/test.sh (setup.sh installs jest)");
    let mut c = sb.cmd();
    c.env("RUSTUP_HOME", std::env::var("RUSTUP_HOME").unwrap_or(format!("{home}/.rustup")))
        .env("CARGO_HOME", std::env::var("CARGO_HOME").unwrap_or(format!("{home}/.cargo")))
        .args(["bench", "edits", "--exercises"])
        .arg(exercises())
        .arg("--js-modules")
        .arg(modules);
    c
}

/// A real run with Qwen 0.5B, results in `results`, projects under `work`.
fn qwen_bench(sb: &Sandbox, results: &std::path::Path, work: &std::path::Path) -> Command {
    let mut c = bench(sb);
    c.arg("--model").arg(qwen_05b()).arg("--out").arg(results).arg("--work").arg(work).args(["--max-tokens", "1024"]);
    c
}

#[test]
fn every_exercise_tells_its_reference_solution_from_its_stub() {
    let sb = Sandbox::new();
    let out = bench(&sb).arg("--check-examples").arg("--out").arg(sb.dir.path().join("check.jsonl")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for id in ["javascript/initials", "rust/digit-sum", "go/clamp"] {
        assert!(stdout.contains(&format!("ok      {id}")), "{id}: {stdout}");
    }
    assert!(stdout.contains("3 of 3 exercises run their tests"), "{stdout}");
    assert!(!stdout.contains("note"), "no fixture is a refactoring task: {stdout}");
}

#[test]
fn qwen_runs_the_smoke_benchmark_and_every_try_is_recorded() {
    let sb = Sandbox::new();
    let results = sb.dir.path().join("edits.jsonl");
    let work = sb.dir.path().join("work");
    let run = || qwen_bench(&sb, &results, &work).output().unwrap();
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| perimeter | qwen2.5-coder-0.5b-instruct-q4_k_m |"), "the summary table: {stdout}");

    let lines: Vec<serde_json::Value> = json_lines(&std::fs::read(&results).unwrap());
    let ids: Vec<&str> = lines.iter().map(|l| l["exercise"].as_str().unwrap()).collect();
    assert_eq!(ids, ["javascript/initials", "rust/digit-sum", "go/clamp"], "interleaved by language");
    for line in &lines {
        let tries = line["tries"].as_array().unwrap();
        assert!((1..=2).contains(&tries.len()), "{line}");
        for (n, t) in tries.iter().enumerate() {
            // The instructions alone are over 100 tokens; the tests ran and took time.
            assert!(t["prompt_tokens"].as_u64().unwrap() > 100, "{t}");
            assert!(t["answer_tokens"].as_u64().unwrap() > 0, "{t}");
            assert!(t["test_seconds"].as_f64().unwrap() > 0.0, "{t}");
            // Reading a 100-token prompt and writing an answer costs the model CPU time.
            assert!(t["cpu_seconds"].as_f64().unwrap() > 0.0, "{t}");
            let passed = t["tests_passed"].as_bool().unwrap();
            assert!(passed || !t["test_output_head"].as_str().unwrap().is_empty(), "a failure says why: {t}");
            // Only a failed first try earns a second.
            assert!(n + 1 == tries.len() || !passed, "{line}");
        }
    }

    // The model never saw the tests: they are gone from the project after each run.
    let project = work.join("perimeter/javascript/initials");
    assert!(project.join("initials.js").is_file());
    assert!(!project.join("initials.spec.js").exists() && !project.join("node_modules").exists());
    assert!(!work.join("perimeter/rust/digit-sum/tests").exists());

    // Run again: everything is in the results already, nothing is repeated.
    let again = run();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("resuming: 3 of 3"), "{stderr}");
    assert_eq!(json_lines(&std::fs::read(&results).unwrap()).len(), 3);
}

#[test]
fn the_agent_runs_the_visible_tests_confined_and_the_hidden_ones_judge() {
    let sb = Sandbox::new();
    let results = sb.dir.path().join("edits.jsonl");
    let work = sb.dir.path().join("work");
    let out = qwen_bench(&sb, &results, &work).args(["--only", "initials", "--assistants", "perimeter-agent"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| perimeter-agent | qwen2.5-coder-0.5b-instruct-q4_k_m | 1 |"), "the summary table: {stdout}");

    let lines: Vec<serde_json::Value> = json_lines(&std::fs::read(&results).unwrap());
    assert_eq!(lines.len(), 1);
    let tries = lines[0]["tries"].as_array().unwrap();
    assert!((1..=2).contains(&tries.len()), "one try per edit-and-test round: {tries:?}");
    for t in tries {
        assert!(t["prompt_tokens"].as_u64().unwrap() > 100 && t["answer_tokens"].as_u64().unwrap() > 0, "{t}");
        assert!(t["cpu_seconds"].as_f64().unwrap() > 0.0, "{t}");
        assert!(!t["test_output_head"].as_str().unwrap().is_empty() || t["tests_passed"].as_bool().unwrap(), "{t}");
    }

    // The agent ran the project's test command itself, in the sandbox, allowed as the test
    // command; and nothing else.
    let log: Vec<serde_json::Value> =
        json_lines(&std::fs::read(work.join("perimeter-agent/.perimeter/javascript-initials/command-log.jsonl")).unwrap());
    assert!(!log.is_empty() && log.len() <= 2, "{log:?}");
    for record in &log {
        assert!(record["command"].as_str().unwrap().contains("jest"), "{record}");
        assert_eq!((record["outcome"].as_str(), record["approved_by"].as_str()), (Some("ran"), Some("test command")), "{record}");
    }
    // The hidden tests judged the end, and are gone again.
    assert!(!work.join("perimeter-agent/javascript/initials/initials.spec.js").exists());
}

#[test]
fn a_pause_file_holds_the_run_between_exercises() {
    let sb = Sandbox::new();
    let results = sb.dir.path().join("results.jsonl");
    let pause = sb.dir.path().join("results.jsonl.pause");
    std::fs::write(&pause, "").unwrap();
    let mut child = bench(&sb)
        .arg("--model")
        .arg(dev_model())
        .arg("--out")
        .arg(&results)
        .args(["--limit", "1", "--tries", "1", "--max-tokens", "32"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("paused: remove") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "ended before pausing: {seen}");
        seen.push_str(&line);
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!results.exists(), "no exercise ran while paused");
    std::fs::remove_file(&pause).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{seen}{rest}");
    assert!(rest.contains("going on"), "{rest}");
    assert_eq!(json_lines(&std::fs::read(&results).unwrap()).len(), 1);
}

/// With the port already taken (a server left from another run), the readiness check would
/// reach that server while ours failed to bind, and Aider would be measured on its model.
#[test]
fn a_taken_port_stops_the_run_before_aider_talks_to_the_wrong_server() {
    let sb = Sandbox::new();
    let results = sb.dir.path().join("results.jsonl");
    // The other server answers the readiness check with its own model.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for stream in taken.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let body = r#"{"object":"list","data":[{"id":"another-model","object":"model"}]}"#;
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    let out = bench(&sb)
        .arg("--model")
        .arg(dev_model())
        .arg("--out")
        .arg(&results)
        .args(["--limit", "1", "--tries", "1", "--assistants", "aider", "--port", &port])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("port {port} is in use")) && stderr.contains("--port"), "{stderr}");
    assert!(!results.exists(), "nothing was measured");
}
