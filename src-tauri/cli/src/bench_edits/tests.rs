//! Running an exercise's tests the way its language track does, offline, with a time limit,
//! and keeping what they printed for the second try.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::exercise::{Exercise, Language};

/// Lines of test output a second try is shown (Aider's benchmark shows 50).
pub const OUTPUT_LINES_FOR_RETRY: usize = 50;
/// Bytes of test output kept in the results.
const OUTPUT_KEPT: usize = 64 * 1024;

/// Shared, installed-once tools and caches the test runs use.
pub struct Toolchain {
    /// `node_modules` with jest and babel (scripts/bench-edits.sh installs it).
    pub js_modules: Option<PathBuf>,
    /// Build caches (cargo target, Go build cache) kept across exercises.
    pub cache: PathBuf,
    pub timeout: Duration,
}

pub struct TestRun {
    pub passed: bool,
    pub timed_out: bool,
    pub seconds: f64,
    pub output: String,
}

impl TestRun {
    /// The start of the output, as a retry shows it to the model.
    pub fn output_for_retry(&self) -> String {
        if self.timed_out {
            return "Tests timed out!".to_string();
        }
        head_for_retry(&self.output)
    }
}

/// The first lines of a test run's `output`, as a retry shows them to the model.
pub fn head_for_retry(output: &str) -> String {
    output.lines().take(OUTPUT_LINES_FOR_RETRY).collect::<Vec<_>>().join("\n")
}

impl Toolchain {
    /// Says what is missing for `language`, so a run stops before the first model call.
    pub fn check(&self, language: Language) -> anyhow::Result<()> {
        let needs: &[&str] = match language {
            Language::Javascript => &["node"],
            Language::Rust => &["cargo"],
            Language::Cpp => &["cmake", "make", "g++"],
            Language::Go => &["go"],
        };
        for tool in needs {
            // Only whether it starts matters (`go` has no --version and exits 2).
            if Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
                bail!("`{tool}` is not installed; the {} exercises need it (scripts/bench-edits.sh installs it)", language.folder());
            }
        }
        if language == Language::Javascript && !self.js_modules.as_ref().is_some_and(|m| m.join("jest").is_dir()) {
            bail!("the JavaScript exercises need jest: give --js-modules the node_modules folder scripts/bench-edits.sh installs");
        }
        Ok(())
    }

    /// Readies the tests copied into `workspace` to run: JavaScript's get jest (linked in) and
    /// every test unskipped (the track skips all but the first until a student unskips them).
    pub fn prepare(&self, exercise: &Exercise, workspace: &Path) -> anyhow::Result<()> {
        if exercise.language != Language::Javascript {
            return Ok(());
        }
        let modules = self.js_modules.as_ref().context("no --js-modules")?;
        let link = workspace.join("node_modules");
        if !link.exists() {
            std::os::unix::fs::symlink(modules, &link)?;
        }
        for spec in exercise.hidden.iter().filter(|f| f.ends_with(".spec.js")) {
            let path = workspace.join(spec);
            let text = std::fs::read_to_string(&path)?;
            std::fs::write(&path, text.replace("xtest(", "test(").replace("xit(", "it("))?;
        }
        Ok(())
    }

    /// The test command as the agent runs it, in the sandbox in the project folder: the same
    /// runs as [`Toolchain::run`]'s, with their caches inside the project (the only place a
    /// confined command may write besides a private /tmp).
    pub fn confined_command(&self, language: Language) -> &'static str {
        match language {
            Language::Javascript => "node node_modules/jest/bin/jest.js --ci --no-cache --colors=false .",
            Language::Rust => "cargo test --offline --quiet -- --include-ignored",
            Language::Go => "GOCACHE=$PWD/.cache/go-build GOPATH=$PWD/.cache/go GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go test ./...",
            Language::Cpp => "cmake -DEXERCISM_RUN_ALL_TESTS=1 -S . -B build >/dev/null && cmake --build build -- -j2",
        }
    }

    /// Runs the tests in `workspace` (the exercise's hidden files already copied in).
    pub fn run(&self, exercise: &Exercise, workspace: &Path) -> anyhow::Result<TestRun> {
        self.prepare(exercise, workspace)?;
        let mut command = match exercise.language {
            Language::Javascript => {
                let modules = self.js_modules.as_ref().context("no --js-modules")?;
                let mut c = Command::new("node");
                c.arg(modules.join("jest/bin/jest.js")).args(["--ci", "--no-cache", "--colors=false", "."]);
                c
            }
            Language::Rust => {
                let mut c = Command::new("cargo");
                c.args(["test", "--offline", "--quiet", "--", "--include-ignored"])
                    .env("CARGO_TARGET_DIR", self.cache.join("cargo-target"))
                    .env("CARGO_TERM_COLOR", "never")
                    .env("RUSTFLAGS", "");
                c
            }
            Language::Go => {
                let mut c = Command::new("go");
                c.args(["test", "./..."])
                    .env("GOCACHE", self.cache.join("go-build"))
                    .env("GOPATH", self.cache.join("go"))
                    .env("GOPROXY", "off")
                    .env("GOFLAGS", "-mod=mod")
                    .env("GOTOOLCHAIN", "local");
                c
            }
            Language::Cpp => {
                // Configure and build; the exercise's CMakeLists runs the tests as part of the build.
                let mut c = Command::new("sh");
                c.args(["-c", "cmake -DEXERCISM_RUN_ALL_TESTS=1 -S . -B build >/dev/null && cmake --build build -- -j2"]);
                c
            }
        };
        command.current_dir(workspace);
        // Only for the run: the single-shot assistants never see the line.
        let original = match exercise.language {
            Language::Rust => own_workspace(workspace)?,
            _ => None,
        };
        let run = run_with_limit(command, &workspace.join(".bench-test-output"), self.timeout);
        if let Some(text) = &original {
            std::fs::write(workspace.join("Cargo.toml"), text)?;
        }
        // Paths relative to the project, as the model knows the files (Aider's harness does the same).
        let mut run = run?;
        run.output = run.output.replace(&format!("{}/", workspace.display()), "");
        Ok(run)
    }
}

/// Inside another Cargo workspace (a results folder in a checkout of this repository) cargo
/// refuses the exercise's package; an empty `[workspace]` table in its manifest stops the
/// search. Adds it when missing, and returns the manifest as it was then.
pub fn own_workspace(workspace: &Path) -> anyhow::Result<Option<String>> {
    let manifest = workspace.join("Cargo.toml");
    let original = std::fs::read_to_string(&manifest).ok().filter(|m| !m.lines().any(|l| l.trim() == "[workspace]"));
    if let Some(text) = &original {
        std::fs::write(&manifest, format!("{text}\n[workspace]\n"))?;
    }
    Ok(original)
}

/// Runs `command` with stdout and stderr into `log`, killing its whole process group at
/// `limit`.
fn run_with_limit(mut command: Command, log: &Path, limit: Duration) -> anyhow::Result<TestRun> {
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::create(log)?;
    command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).process_group(0);
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (Some(status), false);
        }
        if started.elapsed() > limit {
            // SAFETY: kill(2) on the child's own process group; no memory is touched.
            unsafe { kill_group(child.id()) };
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let bytes = std::fs::read(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    let mut output = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_KEPT)]).into_owned();
    if bytes.len() > OUTPUT_KEPT {
        output.push_str("\n[output cut]\n");
    }
    Ok(TestRun {
        passed: status.is_some_and(|s| s.success()),
        timed_out,
        seconds: started.elapsed().as_secs_f64(),
        output,
    })
}

unsafe fn kill_group(pid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    kill(-(pid as i32), SIGKILL);
}
