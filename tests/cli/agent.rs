//! `perimeter agent` end to end: Qwen2.5-Coder 0.5B (`scripts/fetch-models.sh --real`) fixes a
//! bug in the scaffold, the project's test command confirms it in the sandbox, and the run is
//! rewound to the exact bytes; an administrator's policy stops every command; a script answers
//! approvals over stdin.

use crate::util::*;

fn agent_events(sb: &Sandbox, project: &std::path::Path, extra: &[&str], env: &[(&str, &std::path::Path)]) -> Vec<serde_json::Value> {
    let mut cmd = sb.cmd();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["agent", "--json", "--approve", "auto-tests", "--project"])
        .arg(project)
        .arg("--model")
        .arg(qwen_05b())
        .args(extra)
        .arg("The add function in calc.js is wrong; make the tests pass")
        .output()
        .unwrap();
    assert!(!out.stderr.starts_with(b"error"), "{}", String::from_utf8_lossy(&out.stderr));
    json_lines(&out.stdout)
}

#[test]
fn qwen_fixes_a_bug_the_tests_confirm_it_and_the_run_rewinds_exactly() {
    let sb = Sandbox::new();
    let project = fixture_project(&sb, "calc-js");
    let before = std::fs::read(project.join("calc.js")).unwrap();
    let added = sb.cmd().args(["projects", "add"]).arg(&project).output().unwrap();
    assert!(added.status.success());

    let events = agent_events(&sb, &project, &[], &[]);
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["finish"], "done", "{events:#?}");
    assert_eq!(report["mode"], "scaffold", "a 0.5B model gets the scaffold");
    let steps = report["steps"].as_array().unwrap();
    let last_run = steps.iter().rev().find(|s| s["call"]["tool"] == "run").unwrap();
    assert_eq!(last_run["outcome"]["command"]["exit_code"], 0, "{last_run:#}");
    assert!(events.iter().any(|e| e["event"] == "call"), "calls are told before they run");
    // The edit's file streamed as the model wrote it, under the edit's step.
    let edit_step = steps.iter().find(|s| s["call"]["tool"] == "edit").unwrap()["number"].clone();
    let written: String =
        events.iter().filter(|e| e["event"] == "writing" && e["step"] == edit_step).map(|e| e["text"].as_str().unwrap()).collect();
    assert!(written.contains("calc.js"), "{written}");
    let test = std::process::Command::new("node").arg("test.js").current_dir(&project).output().unwrap();
    assert!(test.status.success(), "the fix holds outside the sandbox too");
    let log = std::fs::read_to_string(sb.data().join("command-log.jsonl")).unwrap();
    assert!(log.contains(r#""outcome":"ran","approved_by":"test command""#), "{log}");

    let run = report["id"].as_str().unwrap();
    let out = sb.cmd().args(["agent", "--json", "--project"]).arg(&project).args(["--rewind", run]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(project.join("calc.js")).unwrap(), before, "rewound to the exact bytes");
}

#[test]
fn every_answer_is_a_well_formed_call_even_from_the_dev_model() {
    // The 135M development model has never seen the tool format and cannot code; held to the
    // calls' JSON schema by constrained decoding, each of its answers still reads as a call.
    let sb = Sandbox::new();
    sb.import_dev_model();
    let project = fixture_project(&sb, "calc-js");
    sb.cmd().args(["projects", "add"]).arg(&project).output().unwrap();
    let out = sb
        .cmd()
        .args(["agent", "--json", "--mode", "free", "--max-steps", "4", "--approve", "never", "--project"])
        .arg(&project)
        .arg("The add function in calc.js is wrong; fix it")
        .output()
        .unwrap();
    let events = json_lines(&out.stdout);
    let report = &events.last().unwrap()["report"];
    let steps = report["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{events:#?}");
    for s in steps {
        assert!(!s["call"].is_null(), "an answer that is not a call: {s:#}");
        assert!(s["usage"]["prompt_tokens"].is_u64(), "each call's usage is reported: {s:#}");
    }
}

#[test]
fn an_administrators_policy_stops_every_command() {
    let sb = Sandbox::new();
    let project = fixture_project(&sb, "calc-js");
    sb.cmd().args(["projects", "add"]).arg(&project).output().unwrap();
    let policy = sb.dir.path().join("admin-policy.toml");
    std::fs::write(&policy, "run_commands = false\n").unwrap();
    let events = agent_events(&sb, &project, &["--rounds", "1"], &[("PERIMETER_ADMIN_POLICY", &policy)]);
    let report = &events.last().unwrap()["report"];
    let run = report["steps"].as_array().unwrap().iter().find(|s| s["call"]["tool"] == "run").unwrap();
    assert!(run["outcome"]["output"].as_str().unwrap().contains("turned off by the policy"), "{run:#}");
    assert!(run["outcome"]["command"].is_null(), "nothing ran");
    assert_ne!(report["finish"], "done");
    let log = std::fs::read_to_string(sb.data().join("command-log.jsonl")).unwrap();
    assert!(log.contains(r#""outcome":"forbidden""#), "{log}");
}

#[test]
fn with_json_a_script_answers_each_approval_on_stdin() {
    use std::io::Write;
    let sb = Sandbox::new();
    let project = fixture_project(&sb, "calc-js");
    sb.cmd().args(["projects", "add"]).arg(&project).output().unwrap();
    let mut child = sb
        .cmd()
        .args(["agent", "--json", "--approve", "ask", "--rounds", "1", "--project"])
        .arg(&project)
        .arg("--model")
        .arg(qwen_05b())
        .arg("The add function in calc.js is wrong; make the tests pass")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Answered ahead: the agent reads one line per approval it asks for.
    child.stdin.take().unwrap().write_all(b"once\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let events = json_lines(&out.stdout);
    let asked: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "approval").collect();
    assert_eq!(asked.len(), 1, "{events:#?}");
    let command = asked[0]["command"].as_str().unwrap();
    let log: Vec<serde_json::Value> = json_lines(&std::fs::read(sb.data().join("command-log.jsonl")).unwrap());
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0]["command"].as_str(), log[0]["outcome"].as_str(), log[0]["approved_by"].as_str()), (Some(command), Some("ran"), Some("user")));
}
