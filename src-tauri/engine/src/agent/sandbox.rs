//! Running one command for the agent, confined: in the project folder, with no network (its
//! own network namespace), writing only inside the project and a private `/tmp`, the user's
//! secrets (SSH and cloud keys, the app's own data) out of sight, a scrubbed environment, a
//! time limit and an output cap.
//!
//! On Linux the confinement is bubblewrap (`bwrap`), which needs no privileges. Without it no
//! command runs: the agent is told so, and the user how to install it. macOS would use
//! `sandbox-exec` with a deny-network, project-only-write profile, Windows an AppContainer
//! with no network capability; neither is built yet, so commands are refused there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};
use crate::CancellationToken;

/// How long and how much a command may run and print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time before the command (and everything it started) is killed.
    pub timeout: Duration,
    /// Output kept (stdout and stderr together); the rest is counted, not kept.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(120), output_bytes: 64 * 1024 }
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CommandRun {
    /// The command as given to `sh -c`.
    pub command: String,
    /// `None` when it was killed (time limit, cancelled) or ended by a signal.
    pub exit_code: Option<i32>,
    /// Stdout and stderr interleaved as written, cut at the output cap.
    pub output: String,
    /// Bytes printed beyond the cap (not kept).
    pub output_dropped: u64,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Stopped by the user.
    pub cancelled: bool,
    /// Wall time.
    pub duration_ms: f64,
}

impl CommandRun {
    /// It ran to the end and exited 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Environment variables a command keeps (everything else, tokens and keys included, is
/// dropped). Toolchains find themselves through these.
const KEPT_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "RUSTUP_HOME", "CARGO_HOME", "GOROOT", "JAVA_HOME"];

/// Folders under the home folder that hold credentials; hidden from every command.
const SECRET_DIRS: &[&str] = &[".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gcloud", ".config/gh", ".password-store"];
/// Credential files under the home folder, replaced by an empty file.
const SECRET_FILES: &[&str] = &[".netrc", ".git-credentials", ".npmrc", ".pypirc"];

/// Runs `command` with `sh -c` in `root`, confined as the module says, until it ends, the
/// time limit passes or `cancel` fires (then it is killed with everything it started).
pub async fn run(root: &Path, command: &str, limits: &Limits, cancel: &CancellationToken) -> Result<CommandRun> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    let mut cmd = confined(&root, command)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Error::Sandbox { reason: format!("could not start bubblewrap: {e}") })?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    // Only bwrap writes here (the command's stderr joins its stdout), a line at most.
    let mut bwrap_errors = child.stderr.take().expect("stderr is piped");

    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    let (mut timed_out, mut cancelled) = (false, false);
    let deadline = tokio::time::sleep(limits.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => { timed_out = true; break; }
            _ = cancel.cancelled() => { cancelled = true; break; }
            read = stdout.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limits.output_bytes.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                    dropped += (n - room) as u64;
                }
            },
        }
    }
    let output = String::from_utf8_lossy(&kept).into_owned();
    let exit_code = if timed_out || cancelled {
        // bwrap runs the command as the init of its own PID namespace (--unshare-pid, and
        // --die-with-parent): killing bwrap ends everything the command started.
        let _ = child.kill().await;
        None
    } else {
        child.wait().await.map_err(|e| Error::Sandbox { reason: e.to_string() })?.code()
    };
    // bwrap's own failure (no user namespaces, say) is not the command's.
    let mut complaint = String::new();
    let _ = bwrap_errors.read_to_string(&mut complaint).await;
    if exit_code == Some(1) && complaint.starts_with("bwrap: ") {
        return Err(Error::Sandbox { reason: complaint.trim().to_string() });
    }
    Ok(CommandRun {
        command: command.to_string(),
        exit_code,
        output,
        output_dropped: dropped,
        timed_out,
        cancelled,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The bubblewrap invocation for `command` in the project `root` (canonical).
#[cfg(target_os = "linux")]
fn confined(root: &Path, command: &str) -> Result<tokio::process::Command> {
    let bwrap = which("bwrap").ok_or_else(|| Error::Sandbox {
        reason: "bubblewrap is not installed, and commands never run unconfined: install the `bubblewrap` package".into(),
    })?;
    let mut cmd = tokio::process::Command::new(bwrap);
    cmd.env_clear();
    cmd.args(["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]);
    cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut hidden: Vec<PathBuf> = Vec::new();
    if let Some(home) = &home {
        hidden.extend(SECRET_DIRS.iter().map(|d| home.join(d)).filter(|d| d.is_dir()));
    }
    hidden.push(crate::paths::data_dir());
    for dir in hidden.iter().filter(|d| d.is_dir() && !root.starts_with(d)) {
        cmd.arg("--tmpfs").arg(dir);
    }
    if let Some(home) = &home {
        for f in SECRET_FILES.iter().map(|f| home.join(f)).filter(|f| f.is_file()) {
            cmd.arg("--ro-bind").arg("/dev/null").arg(f);
        }
    }
    // Last, so that the project is writable even where it lies under a hidden folder.
    cmd.arg("--bind").arg(root).arg(root).arg("--chdir").arg(root);
    for name in KEPT_ENV {
        if let Some(v) = std::env::var_os(name) {
            cmd.arg("--setenv").arg(name).arg(v);
        }
    }
    // Tool caches go to the private /tmp (the home folder is read-only inside); no colours,
    // whose escape codes would only cost the model tokens.
    for (name, value) in [
        ("TMPDIR", "/tmp"),
        ("XDG_CACHE_HOME", "/tmp/.cache"),
        ("GOCACHE", "/tmp/.cache/go-build"),
        ("TERM", "dumb"),
        ("CI", "true"),
        ("NO_COLOR", "1"),
        ("FORCE_COLOR", "0"),
        ("CARGO_TERM_COLOR", "never"),
    ] {
        cmd.arg("--setenv").arg(name).arg(value);
    }
    cmd.arg("--").arg("/bin/sh").arg("-c").arg(format!("exec 2>&1\n{command}"));
    Ok(cmd)
}

#[cfg(not(target_os = "linux"))]
fn confined(_root: &Path, _command: &str) -> Result<tokio::process::Command> {
    Err(Error::Sandbox { reason: "commands can only be run confined, and this build confines them on Linux only".into() })
}

/// The first `name` on the `PATH`.
#[cfg(target_os = "linux")]
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Whether commands can run confined on this machine; the reason when not.
pub fn available() -> std::result::Result<(), String> {
    match confined(Path::new("/"), "true") {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
