//! `perimeter models pull` against a real HTTP server on loopback (tests/cli/file_server.rs)
//! serving the development model: a full download, resumes after a cut connection and after
//! the process is killed, a server that ignores ranges, a wrong sha256, a 404, a stall, a full
//! disk, a refused host, a redirect to a refused host, cancellation, and two downloads at once.
//! After every failure the model is not installed, and nothing but a resumable partial file
//! (or nothing at all) is left.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::file_server::{Behaviour, FileServer};
use crate::util::{copy_env, dev_model, Sandbox};

const ID: &str = "smollm2-135m-instruct-q4_1";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_bytes() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    BYTES.get_or_init(|| Arc::new(std::fs::read(dev_model()).unwrap())).clone()
}

/// A sandbox whose policy allows loopback, and a server of the model.
fn setup(behaviour: Behaviour) -> (Sandbox, FileServer) {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.data()).unwrap();
    std::fs::write(sb.data().join("network.toml"), "mode = \"allowlist\"\nallow = [\"127.0.0.1\"]\n").unwrap();
    (sb, FileServer::start(FILE, model_bytes(), behaviour))
}

fn pull(sb: &Sandbox, server: &FileServer, extra: &[&str]) -> Output {
    pull_cmd(sb, server, extra).output().unwrap()
}

fn pull_cmd(sb: &Sandbox, server: &FileServer, extra: &[&str]) -> Command {
    let mut c = sb.cmd();
    c.args(["models", "pull", ID, "--from", &server.url(FILE)]).args(extra);
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn models_dir(sb: &Sandbox) -> PathBuf {
    sb.data().join("models")
}

fn part(sb: &Sandbox) -> PathBuf {
    models_dir(sb).join(format!("{FILE}.part"))
}

fn installed_ids(sb: &Sandbox) -> Vec<String> {
    let out = sb.cmd().args(["models", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["installed"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

/// The model is listed, its file is the real one, and no partial file is left.
fn assert_installed(sb: &Sandbox) {
    assert_eq!(installed_ids(sb), vec![ID.to_string()]);
    let file = models_dir(sb).join(FILE);
    assert_eq!(std::fs::read(&file).unwrap().len(), model_bytes().len());
    assert!(std::fs::read(&file).unwrap() == *model_bytes(), "the installed file differs from the served one");
    assert!(!part(sb).exists(), "a partial file is left beside the installed model");
    let verify = sb.cmd().args(["models", "verify"]).output().unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
}

fn assert_not_installed(sb: &Sandbox) {
    assert!(installed_ids(sb).is_empty());
    assert!(!models_dir(sb).join(FILE).exists(), "a model file is in place although the download failed");
}

fn wait_for_part(sb: &Sandbox, at_least: u64) {
    let t = Instant::now();
    while std::fs::metadata(part(sb)).map(|m| m.len()).unwrap_or(0) < at_least {
        assert!(t.elapsed() < Duration::from_secs(60), "the download did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_model_downloads_from_an_administrators_mirror_and_is_logged() {
    let (sb, server) = setup(Behaviour::Normal);
    let admin = sb.dir.path().join("admin-policy.toml");
    std::fs::write(
        &admin,
        format!("mode = \"allowlist\"\nallow = [\"127.0.0.1\"]\nmirrors = [\"http://127.0.0.1:{}/models/\"]\n", server.port),
    )
    .unwrap();
    let out = sb.cmd().env("PERIMETER_ADMIN_POLICY", &admin).args(["models", "pull", ID, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let lines = crate::util::json_lines(&out.stdout);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "installed");
    assert!(lines.iter().any(|l| l["event"] == "progress" && l["progress"]["total"] == model_bytes().len() as u64));
    assert_installed(&sb);
    // The mirror was tried before the catalog's Hugging Face URL, which the policy refuses anyway.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].path, format!("/models/{FILE}"));
    let log = sb.cmd().args(["network", "log", "--json"]).output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("model download") && log.contains(&model_bytes().len().to_string()), "{log}");

    // Pulling again does nothing.
    let again = sb.cmd().env("PERIMETER_ADMIN_POLICY", &admin).args(["models", "pull", ID]).output().unwrap();
    assert!(text(&again).contains("already installed"), "{}", text(&again));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_cut_connection_is_resumed_without_fetching_the_bytes_again() {
    let half = model_bytes().len() as u64 / 2;
    let (sb, server) = setup(Behaviour::CutOnceAt(half));
    let out = pull(&sb, &server, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_installed(&sb);
    let r = server.requests();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].range_from, None);
    assert_eq!(r[1].range_from, Some(half), "the second request must ask for the rest only");
    assert_eq!(server.body_bytes_sent(), model_bytes().len() as u64);
}

#[test]
fn a_download_killed_midway_resumes_after_a_restart() {
    let (sb, server) = setup(Behaviour::Slow);
    let mut child = pull_cmd(&sb, &server, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_part(&sb, 6 << 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_not_installed(&sb);
    let kept = std::fs::metadata(part(&sb)).unwrap().len();
    assert!(kept >= 6 << 20);

    server.set(Behaviour::Normal);
    let out = pull(&sb, &server, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_installed(&sb);
    let last = server.requests().last().unwrap().clone();
    assert_eq!(last.range_from, Some(kept), "the restarted download must start where the file on disk ends");
}

#[test]
fn a_server_that_ignores_ranges_gets_a_clean_restart() {
    let (sb, server) = setup(Behaviour::IgnoreRange);
    let out = pull(&sb, &server, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_installed(&sb);
    let r = server.requests();
    assert_eq!(r.len(), 2);
    assert!(r[1].range_from.is_some(), "the retry asked for a range");
}

#[test]
fn a_wrong_sha256_deletes_the_download_and_says_so() {
    let (sb, server) = setup(Behaviour::Corrupt);
    let out = pull(&sb, &server, &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("sha256") && t.contains("the catalog expects") && t.contains("was deleted"), "{t}");
    assert_not_installed(&sb);
    assert!(!part(&sb).exists());
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (sb, server) = setup(Behaviour::NotFound);
    let out = pull(&sb, &server, &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("does not exist there (HTTP 404)"), "{t}");
    assert_not_installed(&sb);
    assert_eq!(std::fs::metadata(part(&sb)).map(|m| m.len()).unwrap_or(0), 0);
}

#[test]
fn a_stalled_server_times_out_and_keeps_what_came() {
    let (sb, server) = setup(Behaviour::StallAt(8 << 20));
    let started = Instant::now();
    let out = pull(&sb, &server, &["--timeout", "1"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("sent nothing for 1 s") && t.contains("run the download again to resume"), "{t}");
    assert!(started.elapsed() < Duration::from_secs(30), "gave up after {:?}", started.elapsed());
    assert_not_installed(&sb);
    assert_eq!(std::fs::metadata(part(&sb)).unwrap().len(), 8 << 20);
    // The retry asked for the rest only, and got nothing more.
    assert_eq!(server.requests()[1].range_from, Some(8 << 20));
}

#[test]
fn an_offline_policy_makes_no_connection_and_says_what_to_do() {
    let (sb, server) = setup(Behaviour::Normal);
    std::fs::remove_file(sb.data().join("network.toml")).unwrap();
    let out = pull(&sb, &server, &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("perimeter network allow") && t.contains("perimeter models import FILE"), "{t}");
    assert!(server.requests().is_empty(), "a connection was made although the policy is offline");
    assert_not_installed(&sb);
    let log = sb.cmd().args(["network", "log"]).output().unwrap();
    assert!(text(&log).contains("nothing has left this machine"), "{}", text(&log));
}

#[test]
fn a_redirect_to_a_host_the_policy_refuses_is_not_followed() {
    let (sb, target) = setup(Behaviour::Normal);
    // The same machine under another name: the policy allows 127.0.0.1 only.
    let redirector = FileServer::start(FILE, model_bytes(), Behaviour::RedirectTo(format!("http://localhost:{}/models/{FILE}", target.port)));
    let out = pull(&sb, &redirector, &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("redirects to a host the network policy refuses") && t.contains("localhost"), "{t}");
    assert_eq!(redirector.requests().len(), 1);
    assert!(target.requests().is_empty(), "the redirect was followed");
    assert_not_installed(&sb);
}

#[cfg(unix)]
#[test]
fn ctrl_c_cancels_and_keeps_the_bytes_for_later_and_rm_discards_them() {
    let (sb, server) = setup(Behaviour::Slow);
    let child = pull_cmd(&sb, &server, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_part(&sb, 6 << 20);
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("was cancelled") && text(&out).contains("to resume later"), "{}", text(&out));
    assert_not_installed(&sb);
    assert!(std::fs::metadata(part(&sb)).unwrap().len() >= 6 << 20);

    let rm = sb.cmd().args(["models", "rm", ID]).output().unwrap();
    assert!(rm.status.success() && text(&rm).contains("deleted the unfinished download"), "{}", text(&rm));
    assert!(!part(&sb).exists());
}

#[test]
fn two_downloads_of_one_file_never_race() {
    let (sb, server) = setup(Behaviour::Slow);
    let mut first = pull_cmd(&sb, &server, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_part(&sb, 1);
    let second = pull(&sb, &server, &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    assert!(text(&second).contains("already being downloaded"), "{}", text(&second));
    assert_eq!(server.requests().len(), 1, "the second download made a request");
}

/// `script` run as `sh -c` in a new mount namespace where the model folder is a tmpfs of
/// `size`, with the sandbox's environment; `$@` is the pull command.
fn in_small_disk(sb: &Sandbox, server: &FileServer, size: &str, script: &str) -> Output {
    let probe = Command::new("unshare").args(["-rm", "true"]).output().unwrap();
    assert!(probe.status.success(), "unshare -rm (util-linux; needs user namespaces): {}", text(&probe));
    let dir = models_dir(sb);
    std::fs::create_dir_all(&dir).unwrap();
    let pull = pull_cmd(sb, server, &[]);
    let mut c = Command::new("unshare");
    copy_env(&pull, &mut c);
    c.args(["-rm", "sh", "-c", &format!("mount -t tmpfs -o size={size} tmpfs \"$MODELS\" || exit 90\n{script}"), "sh"]);
    c.arg(pull.get_program()).args(pull.get_args()).env("MODELS", &dir);
    c.output().unwrap()
}

#[test]
fn a_disk_too_small_is_refused_before_any_byte_is_fetched() {
    let (sb, server) = setup(Behaviour::Normal);
    let out = in_small_disk(&sb, &server, "60m", "\"$@\"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("not enough free space") && t.contains("MiB are free"), "{t}");
    assert!(server.requests().is_empty(), "a request was made although the disk cannot hold the file");
}

#[test]
fn a_disk_that_fills_up_midway_is_a_clear_error_and_nothing_is_installed() {
    let (sb, server) = setup(Behaviour::Slow);
    let script = format!(
        "\"$@\" & pid=$!\n\
         while kill -0 $pid 2>/dev/null && [ \"$(stat -c %s \"$MODELS/{FILE}.part\" 2>/dev/null || echo 0)\" -lt 6000000 ]; do sleep 0.05; done\n\
         dd if=/dev/zero of=\"$MODELS/filler\" bs=1M 2>/dev/null\n\
         wait $pid; rc=$?\n\
         ls \"$MODELS\"; cat \"$MODELS/installed.json\" 2>/dev/null\n\
         exit $rc"
    );
    let out = in_small_disk(&sb, &server, "112m", &script);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not enough free space") && t.contains("nothing was lost"), "{t}");
    assert!(!t.contains("\"models\""), "a list of installed models was written: {t}");
    assert!(!t.lines().any(|l| l == FILE), "the model file is in place: {t}");
}
