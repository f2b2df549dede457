use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A project of `n` Rust files of about 30 KB each, with one unique function per file.
fn big_project(sb: &Sandbox, n: usize) -> std::path::PathBuf {
    let root = sb.dir.path().join("project");
    for i in 0..n {
        let dir = root.join(format!("src/m{}", i / 100));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!("/// Module {i}.\npub fn unique_function_{i}() -> usize {{ {i} }}\n");
        for j in 0..600 {
            text += &format!("pub fn helper_{i}_{j}(x: usize) -> usize {{ x * {j} }}\n");
        }
        std::fs::write(dir.join(format!("f{i}.rs")), text).unwrap();
    }
    root
}

#[test]
fn index_and_search_report_json() {
    let sb = Sandbox::new();
    let root = sb.dir.path().join("p");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/pager.rs"), "pub fn spawn_pager(cmd: &str) -> Child {\n    todo!()\n}\n").unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() { run(); }\n").unwrap();
    std::fs::write(root.join("logo.png"), [0u8, 1, 2]).unwrap();
    let out = sb.cmd().args(["index", "--json"]).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["files_indexed"], 2);
    assert_eq!(s["skipped"]["binary"], 1);

    let out = sb.cmd().args(["search", "--json"]).arg(&root).arg("the pager fails to spawn").output().unwrap();
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &hits[0];
    assert_eq!(first["path"], "src/pager.rs");
    assert_eq!((first["start_line"].as_u64(), first["end_line"].as_u64()), (Some(1), Some(3)));
    assert!(first["text"].as_str().unwrap().contains("spawn_pager") && first["score"].as_f64().unwrap() > 0.0);

    let out = sb.cmd().args(["search", "--files", "--json", "--limit", "1"]).arg(&root).arg("main run").output().unwrap();
    let files: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(files.as_array().unwrap().len(), 1);
    assert_eq!(files[0]["path"], "src/main.rs");

    // The index lives in the app's data folder, never in the project.
    assert!(!root.join(".perimeter").exists() && std::fs::read_dir(&root).unwrap().count() == 2);
}

#[test]
fn bench_retrieval_writes_a_ranking_per_case_with_scores_on_request() {
    let sb = Sandbox::new();
    let root = sb.dir.path().join("p");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/pager.rs"), "pub fn spawn_pager(cmd: &str) -> Child {\n    todo!()\n}\n").unwrap();
    std::fs::write(root.join("src/theme.rs"), "pub fn load_theme(name: &str) -> Theme {\n    todo!()\n}\n").unwrap();
    let queries = sb.dir.path().join("queries.jsonl");
    let case = |id: &str, query: &str| serde_json::json!({ "id": id, "dir": root, "query": query }).to_string();
    std::fs::write(&queries, format!("{}\n{}\n", case("a", "the pager fails to spawn"), case("b", "a theme will not load"))).unwrap();
    let run = sb.dir.path().join("run.jsonl");
    let out = sb.cmd().args(["bench", "retrieval", "--rankings", "--out"]).arg(&run).arg(&queries).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 cases: indexing"));
    let lines = json_lines(&std::fs::read(&run).unwrap());
    let tops: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["id"].as_str().unwrap(), l["ranked_files"][0].as_str().unwrap())).collect();
    assert_eq!(tops, [("a", "src/pager.rs"), ("b", "src/theme.rs")]);
    // --rankings: the lexical ranking with its scores, best first; no semantic one without an embedder.
    let lexical = &lines[0]["lexical"][0];
    assert_eq!(lexical[0], "src/pager.rs");
    assert!(lexical[1].as_f64().unwrap() > 0.0);
    assert!(lines[0].get("semantic").is_none());
}

#[test]
fn an_index_killed_mid_run_reopens_and_completes() {
    let sb = Sandbox::new();
    let root = big_project(&sb, 2500);
    let mut child = sb.cmd().args(["index", "--json"]).arg(&root).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Let it make its first commit (meta.json then lists a segment), then kill it unwarned.
    let started = Instant::now();
    let projects = sb.data().join("projects");
    while started.elapsed() < Duration::from_secs(60) && !committed(&projects) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the indexer finished before it could be killed; make the project bigger");

    let out = sb.cmd().args(["index", "--json"]).arg(&root).output().unwrap();
    assert!(out.status.success(), "reopening failed: {}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let done = s["files_indexed"].as_u64().unwrap() + s["files_unchanged"].as_u64().unwrap();
    assert_eq!(done, 2500, "{s}");
    assert!(s["files_unchanged"].as_u64().unwrap() > 0, "nothing committed before the kill survived: {s}");
    for probe in ["unique_function_0", "unique_function_2499"] {
        let out = sb.cmd().args(["search", "--files", "--json", "--limit", "1"]).arg(&root).arg(probe).output().unwrap();
        let files: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(files.as_array().unwrap().len(), 1, "{probe} not found after recovery");
    }
}

/// Whether a tantivy index under `dir` has committed a segment (its meta.json names one).
fn committed(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            committed(&p)
        } else {
            p.file_name().is_some_and(|n| n == "meta.json")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("segment_id"))
        }
    })
}

#[test]
fn projects_are_added_listed_and_removed_with_their_index() {
    let sb = Sandbox::new();
    let root = sb.dir.path().join("my-app");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("lib.rs"), "pub fn hello() {}\n").unwrap();
    let out = sb.cmd().args(["projects", "add"]).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 files indexed"));
    // Adding twice keeps one entry.
    sb.cmd().args(["projects", "add"]).arg(&root).output().unwrap();
    let list = sb.cmd().args(["projects", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "my-app");
    let index_dir = std::path::PathBuf::from(v[0]["index_dir"].as_str().unwrap());
    assert!(index_dir.starts_with(sb.data()) && index_dir.join("meta.json").is_file());

    let out = sb.cmd().args(["projects", "remove"]).arg(&root).output().unwrap();
    assert!(out.status.success());
    assert!(!index_dir.exists(), "the index was left behind");
    assert!(root.join("lib.rs").is_file(), "removing a project must not touch its files");
    let list = sb.cmd().args(["projects", "list", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap(), serde_json::json!([]));
    let out = sb.cmd().args(["projects", "remove"]).arg(&root).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("is not a project"));
}

#[test]
fn unreadable_folders_are_skipped_and_counted() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let root = sb.dir.path().join("p");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("locked")).unwrap();
    std::fs::write(root.join("src/ok.rs"), "pub fn readable() {}\n").unwrap();
    std::fs::write(root.join("locked/secret.rs"), "pub fn hidden_away() {}\n").unwrap();
    let mode = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(&root.join("locked"), 0o000);

    let as_root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0";
    let mut cmd = if as_root {
        // Root reads every folder whatever its mode: run the indexer as `nobody` instead.
        let bin = sb.dir.path().join("perimeter");
        let built = sb.cmd().get_program().to_owned();
        std::fs::hard_link(&built, &bin).or_else(|_| std::fs::copy(&built, &bin).map(|_| ())).unwrap();
        for dir in [sb.dir.path(), &root, &root.join("src")] {
            mode(dir, 0o755);
        }
        for dir in [sb.data(), sb.home()] {
            std::fs::create_dir_all(&dir).unwrap();
            mode(&dir, 0o777);
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c.env("HOME", sb.home()).env("PERIMETER_DATA_DIR", sb.data());
        c
    } else {
        sb.cmd()
    };
    let out = cmd.args(["index", "--json"]).arg(&root).output().unwrap();
    mode(&root.join("locked"), 0o755);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["files_indexed"], 1, "{s}");
    assert_eq!(s["skipped"]["unreadable"], 1, "{s}");
}

#[test]
fn hybrid_search_finds_by_meaning_and_a_missing_embedder_falls_back_to_lexical_with_a_notice() {
    let sb = Sandbox::new();
    let root = sb.dir.path().join("p");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("src/backoff.rs"),
        "/// Delay before the next attempt: doubles each time, capped at a minute.\n\
         pub fn next_delay(attempt: u32) -> u64 { (1u64 << attempt.min(6)).min(60) }\n",
    )
    .unwrap();
    std::fs::write(root.join("src/render.rs"), "/// Draws the results as HTML rows.\npub fn render_rows() {}\n").unwrap();
    let question = "wait longer between retries when the server keeps failing";
    let embedder = repo_root().join("models/local/all-minilm-l6-v2");
    assert!(embedder.is_dir(), "run scripts/fetch-models.sh --embed");

    let out = sb.cmd().args(["index", "--json", "--embed", "--embedder"]).arg(&embedder).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((s["files_indexed"].as_u64(), s["embedding"]["chunks_embedded"].as_u64()), (Some(2), Some(2)), "{s}");

    let vectors_size = || -> u64 {
        let projects = std::fs::read_dir(sb.data().join("projects")).unwrap().flatten();
        projects.flat_map(|p| std::fs::read_dir(p.path().join("vectors")).into_iter().flatten().flatten()).map(|f| f.metadata().unwrap().len()).sum()
    };
    let kept = vectors_size();
    assert!(kept > 0);

    // The search finds the vectors the index run kept: nothing is embedded again.
    let out = sb.cmd().args(["search", "--files", "--json", "--mode", "hybrid", "--embedder"]).arg(&embedder).arg(&root).arg(question).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(files[0]["path"], "src/backoff.rs", "{files}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("notice"));
    assert_eq!(vectors_size(), kept);
    // The vectors are kept in the app's data beside the index, not in the project.
    let kept = std::fs::read_dir(sb.data().join("projects")).unwrap().flatten().any(|p| p.path().join("vectors").is_dir());
    assert!(kept && std::fs::read_dir(&root).unwrap().count() == 1);

    let out = sb.cmd().args(["search", "--files", "--json", "--mode", "semantic", "--embedder", "/nonexistent/model"]).arg(&root).arg(question).output().unwrap();
    assert!(out.status.success(), "a missing embedder must not fail the search");
    let notice = String::from_utf8_lossy(&out.stderr);
    assert!(notice.contains("notice:") && notice.contains("search stays lexical"), "{notice}");
    let files: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(files.as_array().unwrap().iter().all(|f| f["path"] != "src/backoff.rs"), "lexical results expected: {files}");
}

#[test]
fn the_index_benchmark_times_search_by_meaning_over_every_chunk_with_a_sample_embedded() {
    let sb = Sandbox::new();
    let root = sb.dir.path().join("p");
    std::fs::create_dir_all(root.join("src")).unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("src/m{i}.rs")), format!("/// Step {i} of the pipeline.\npub fn step_{i}() -> u32 {{ {i} }}\n")).unwrap();
    }
    let queries = sb.dir.path().join("queries.txt");
    std::fs::write(&queries, "which step comes first\nstep_3\n").unwrap();
    let embedder = repo_root().join("models/local/all-minilm-l6-v2");
    let out = sb.cmd().args(["bench", "index", "--json", "--embed-sample", "2", "--queries"]).arg(&queries).arg("--embedder").arg(&embedder).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &r["semantic"];
    // The model embeds the sample (rounded up to its batch), the others get copies: all 20 have a vector.
    let embedded = s["chunks_embedded"].as_u64().unwrap();
    assert!((2..20).contains(&embedded), "{s}");
    assert_eq!((s["chunks_to_embed"].as_u64(), s["vectors"].as_u64()), (Some(20), Some(20)), "{s}");
    assert!(s["embed_chunks_per_s"].as_f64().unwrap() > 0.0);
    for k in ["hybrid_p50_ms", "hybrid_p99_ms", "semantic_p50_ms", "first_search_ms", "question_embed_p50_ms", "search_after_save_ms"] {
        assert!(s[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {s}");
    }
    assert!(s["hybrid_p99_ms"].as_f64() >= s["hybrid_p50_ms"].as_f64());
    assert!(s["search_after_save_max_ms"].as_f64() >= s["search_after_save_ms"].as_f64(), "{s}");
    // The file it saved to time a question after a save is gone again.
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["src"], "{left:?}");
}

#[test]
fn the_embedder_of_search_by_meaning_is_chosen_once_for_the_app_and_every_command() {
    let sb = Sandbox::new();
    let models = sb.data().join("models");
    std::fs::create_dir_all(&models).unwrap();
    for id in ["all-minilm-l6-v2", "embeddinggemma-300m"] {
        let dir = repo_root().join("models/local").join(id);
        assert!(dir.is_dir(), "run scripts/fetch-models.sh --embed --embed-gemma");
        std::os::unix::fs::symlink(dir, models.join(id)).unwrap();
    }
    let list = |args: &[&str]| -> Vec<(String, bool)> {
        let out = sb.cmd().args(["models", "embedder", "--json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().unwrap().iter().map(|e| (e["id"].as_str().unwrap().to_string(), e["selected"].as_bool().unwrap())).collect()
    };
    let selected = |l: Vec<(String, bool)>| l.into_iter().find(|(_, s)| *s).map(|(id, _)| id);
    assert_eq!(selected(list(&[])).as_deref(), Some("all-minilm-l6-v2"));
    assert_eq!(selected(list(&["embeddinggemma-300m"])).as_deref(), Some("embeddinggemma-300m"));

    // The next command embeds with it, without --embedder.
    let root = sb.dir.path().join("proj");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/backoff.rs"), "/// Delay before the next attempt: doubles each time.\npub fn next_delay(n: u32) -> u64 { 1 << n }\n").unwrap();
    let out = sb.cmd().args(["index", "--json", "--embed"]).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gemma_vectors = std::fs::read_dir(sb.data().join("projects")).unwrap().flatten().any(|p| p.path().join("vectors/embeddinggemma-300m-768d-128t.vectors").is_file());
    assert!(gemma_vectors, "the chosen embedder's vectors");

    let out = sb.cmd().args(["models", "embedder", "no-such-embedder"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("all-minilm-l6-v2, embeddinggemma-300m"));
    assert_eq!(selected(list(&[])).as_deref(), Some("embeddinggemma-300m"), "a refused choice changes nothing");
}
