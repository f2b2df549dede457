use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn model_file(name: &str) -> PathBuf {
    let path = repo_root().join("models/local").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh --all", path.display());
    path
}

pub fn dev_model() -> PathBuf {
    model_file("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the real coding model the tests run
/// (`scripts/fetch-models.sh --real`).
pub fn qwen_05b() -> PathBuf {
    let path = repo_root().join("models/local/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh --real", path.display());
    path
}

/// A fresh user: an empty HOME and data folder, removed when dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `perimeter` with this sandbox's HOME and data folder, on 2 threads.
    pub fn cmd(&self) -> Command {
        std::fs::create_dir_all(self.home()).unwrap();
        let mut c = Command::cargo_bin("perimeter").unwrap();
        c.env("HOME", self.home())
            .env("PERIMETER_DATA_DIR", self.data())
            .env_remove("HF_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .args(["--threads", "2"]);
        c
    }

    /// `perimeter models import MODEL --link`, asserting success.
    pub fn import_dev_model(&self) {
        let out = self.cmd().args(["models", "import", "--link"]).arg(dev_model()).output().unwrap();
        assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Gives `to` the environment `from` sets and removes (to run a sandbox's command another way).
pub fn copy_env(from: &Command, to: &mut Command) {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => to.env(k, v),
            None => to.env_remove(k),
        };
    }
}

/// The JSON lines a command printed.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A copy of a fixture project (tests/fixtures/projects/NAME) inside the sandbox.
pub fn fixture_project(sb: &Sandbox, name: &str) -> PathBuf {
    let to = sb.dir.path().join(name);
    copy_dir(&repo_root().join("tests/fixtures/projects").join(name), &to);
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A recorded model answer from tests/fixtures/edits.
pub fn edit_fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/edits").join(name)
}
