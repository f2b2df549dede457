//! Carrying out the agent's calls on one project: search and listing through its index,
//! reading files (numbered lines, capped), edits through the proposal machinery (applied
//! atomically, held changes left out, recorded for undo), and commands through the policy,
//! the user's approval and the sandbox. Every failure becomes a result the model can read.

use std::path::Path;

use super::commands::{self, ApprovalMode, CommandLog, CommandRecord, Decision, ProjectCommands};
use super::sandbox::{self, Limits};
use super::{Brain, Outcome, ToolCall};
use crate::edit::{self, History, Proposals, Selection};
use crate::error::Result;
use crate::index::{ProjectIndex, SearchOptions};
use crate::CancellationToken;

/// Output shown to the model for one result: enough to act on, small enough for a context
/// window of a few thousand tokens.
const OUTPUT_CHARS: usize = 6_000;
/// Lines `read_file` returns at most.
const READ_LINES: usize = 200;
/// Files `list_files` names at most.
const LIST_FILES: usize = 200;

/// A project as the agent works on it.
pub struct Workbench<'a> {
    /// Its index (the root is the project folder).
    pub index: &'a ProjectIndex,
    /// Where proposals are kept.
    pub proposals: Proposals,
    /// Where applied changes are recorded (what undo and rewind use).
    pub history: History,
    /// The project's folder in the app's data (its command settings).
    pub data_dir: std::path::PathBuf,
    /// Where every command asked for is logged.
    pub command_log: CommandLog,
    /// `Some(reason)` when an administrator's policy forbids running commands.
    pub commands_forbidden: Option<String>,
}

impl Workbench<'_> {
    fn root(&self) -> &Path {
        self.index.root()
    }

    /// The project's test command (its setting, or guessed from its build files).
    pub fn test_command(&self) -> Option<String> {
        ProjectCommands::load(&self.data_dir).ok().unwrap_or_default().tests(self.root())
    }

    /// The file a task is about: one it names, else the best-ranked source file.
    pub fn locate(&self, task: &str) -> Result<Option<String>> {
        let known = self.index.paths()?;
        if let Some(named) = crate::assistant::citations::find(task, self.root(), &known).into_iter().find_map(|c| c.path) {
            return Ok(Some(named));
        }
        let hits = self.index.retrieve(task, &SearchOptions { limit: 10, ..SearchOptions::default() })?;
        let is_test = |p: &str| edit::gate::is_test_file(p);
        Ok(hits.files.iter().find(|f| !is_test(&f.path)).or(hits.files.first()).map(|f| f.path.clone()))
    }
}

/// Carries out `call`; a failure of the call itself is an outcome for the model, an error
/// only when the project's data cannot be written.
pub async fn carry_out<B: Brain>(
    brain: &B,
    bench: &Workbench<'_>,
    call: &ToolCall,
    approval: &ApprovalMode,
    limits: &Limits,
    approve: &mut (dyn FnMut(&str) -> Decision + Send),
    on_text: &mut (dyn FnMut(&str) + Send),
    cancel: &CancellationToken,
) -> Result<Outcome> {
    Ok(match call {
        ToolCall::Search { query } => search(bench, query),
        ToolCall::ReadFile { path, start_line, end_line } => read_file(bench, path, *start_line, *end_line),
        ToolCall::ListFiles { under } => list_files(bench, under.as_deref()),
        ToolCall::Edit { path, instruction } => edit_file(brain, bench, path, instruction, on_text, cancel).await?,
        ToolCall::Run { command } => run(bench, command, approval, limits, approve, cancel).await?,
        ToolCall::Done { summary } => Outcome::done(summary),
    })
}

fn search(bench: &Workbench<'_>, query: &str) -> Outcome {
    let hits = match bench.index.retrieve(query, &SearchOptions { limit: 8, ..SearchOptions::default() }) {
        Ok(h) => h,
        Err(e) => return Outcome::failed(format!("search failed: {e}"), e.to_string()),
    };
    if hits.chunks.is_empty() {
        return Outcome::ok(format!("no match for `{query}`"), format!("Nothing matches `{query}`. Try other words, or list_files."));
    }
    let mut out = String::new();
    for c in &hits.chunks {
        let preview: Vec<&str> = c.text.lines().take(6).collect();
        out += &format!("{}:{}-{}\n{}\n\n", c.path, c.start_line, c.end_line, preview.join("\n"));
    }
    let files: Vec<&str> = hits.files.iter().map(|f| f.path.as_str()).collect();
    Outcome::ok(format!("{} match(es): {}", hits.chunks.len(), files.join(", ")), cap(&out))
}

fn read_file(bench: &Workbench<'_>, path: &str, start: Option<usize>, end: Option<usize>) -> Outcome {
    let rel = path.trim_start_matches("./");
    let Some(full) = inside(bench.root(), rel) else {
        return Outcome::failed(format!("{path} is outside the project"), format!("`{path}` is outside the project; paths are relative to the project folder."));
    };
    let text = match std::fs::read(&full) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => return Outcome::failed(format!("{path} is not text"), format!("`{path}` is not a text file.")),
        },
        Err(e) => return Outcome::failed(format!("cannot read {path}"), format!("Cannot read `{path}`: {e}. list_files shows the project's files.")),
    };
    let lines: Vec<&str> = text.lines().collect();
    let first = start.unwrap_or(1).max(1);
    let last = end.unwrap_or(lines.len()).min(lines.len()).min(first + READ_LINES - 1);
    if first > lines.len().max(1) {
        return Outcome::failed(format!("{path} has {} lines", lines.len()), format!("`{path}` has only {} lines.", lines.len()));
    }
    let mut out = format!("{path} (lines {first}-{last} of {}):\n", lines.len());
    for (i, line) in lines.iter().enumerate().take(last).skip(first - 1) {
        out += &format!("{:>4} {line}\n", i + 1);
    }
    Outcome::ok(format!("read {path}:{first}-{last}"), cap(&out))
}

fn list_files(bench: &Workbench<'_>, under: Option<&str>) -> Outcome {
    let paths = match bench.index.paths() {
        Ok(p) => p,
        Err(e) => return Outcome::failed(format!("cannot list files: {e}"), e.to_string()),
    };
    let prefix = under.unwrap_or("").trim_start_matches("./").trim_end_matches('/');
    let chosen: Vec<&String> = paths.iter().filter(|p| prefix.is_empty() || p.starts_with(&format!("{prefix}/")) || *p == prefix).collect();
    let mut out: String = chosen.iter().take(LIST_FILES).map(|p| format!("{p}\n")).collect();
    if chosen.len() > LIST_FILES {
        out += &format!("… and {} more\n", chosen.len() - LIST_FILES);
    }
    Outcome::ok(format!("{} file(s)", chosen.len()), out)
}

async fn edit_file<B: Brain>(
    brain: &B,
    bench: &Workbench<'_>,
    path: &str,
    instruction: &str,
    on_text: &mut (dyn FnMut(&str) + Send),
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let rel = path.trim_start_matches("./");
    if inside(bench.root(), rel).is_none() {
        return Ok(Outcome::failed(format!("{path} is outside the project"), format!("`{path}` is outside the project.")));
    }
    // Naming the file first makes it the one the edit machinery shows the model, whole.
    let request = format!("In {rel}: {instruction}");
    let proposal = match brain.propose(bench.index, &[], &request, on_text, cancel).await {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::failed(format!("no edit: {e}"), format!("The edit failed: {e}"))),
    };
    bench.proposals.save(&proposal)?;
    let tokens = proposal.usage.completion_tokens;
    let mut outcome = match proposal.empty_reason() {
        Some(reason) => Outcome::failed(format!("no change: {reason}"), format!("No change was made: {reason}")),
        None => match edit::apply_proposal(bench.root(), &bench.history, &proposal, &Selection::All, false) {
            Ok(applied) => {
                // The next search must see the new text.
                let changed = proposal.files.iter().map(|f| f.path.clone()).collect();
                let _ = bench.index.update_paths(&changed);
                let diff: String = proposal.files.iter().filter(|f| !applied.held.contains(&f.path)).map(|f| f.diff.as_str()).collect();
                let mut out = format!("Applied:\n{diff}");
                for f in proposal.held() {
                    let hold = f.hold.as_ref().expect("held");
                    out += &format!("\nNot applied ({}): {} — {}", f.path, hold.reason, hold.safe_action);
                }
                let files: Vec<&str> = proposal.files.iter().map(|f| f.path.as_str()).collect();
                let ok = applied.change.is_some();
                let summary = match ok {
                    true => format!("changed {}", files.join(", ")),
                    false => format!("held for confirmation: {}", applied.held.join(", ")),
                };
                Outcome { ok, summary, output: cap(&out), change: applied.change.map(|c| c.id), diff: Some(diff), ..Outcome::default() }
            }
            Err(e) => Outcome::failed(format!("not applied: {e}"), format!("The edit could not be applied: {e}")),
        },
    };
    outcome.proposal = Some(proposal.id);
    outcome.tokens = tokens;
    Ok(outcome)
}

async fn run(
    bench: &Workbench<'_>,
    command: &str,
    approval: &ApprovalMode,
    limits: &Limits,
    approve: &mut (dyn FnMut(&str) -> Decision + Send),
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let root = bench.root();
    let log = |record: CommandRecord| bench.command_log.record(&record);
    if let Some(reason) = &bench.commands_forbidden {
        log(CommandRecord::new(root, command, "forbidden"))?;
        return Ok(Outcome::failed("forbidden by policy".into(), format!("not run: {reason}. Do not run commands.")));
    }
    if let Some(reason) = commands::refusal(command, root) {
        log(CommandRecord::new(root, command, "refused"))?;
        return Ok(Outcome::failed(format!("refused: {reason}"), format!("refused: {reason}.")));
    }
    let mut settings = ProjectCommands::load(&bench.data_dir)?;
    let is_tests = settings.tests(root).as_deref() == Some(command.trim());
    let approved_by = match approval {
        ApprovalMode::Never => None,
        _ if settings.always.iter().any(|c| c == command) => Some("always"),
        ApprovalMode::AutoTests if is_tests => Some("test command"),
        _ => match approve(command) {
            Decision::Once => Some("user"),
            Decision::Always => {
                settings.always.push(command.to_string());
                settings.save(&bench.data_dir)?;
                Some("user")
            }
            Decision::Deny => None,
        },
    };
    let Some(approved_by) = approved_by else {
        log(CommandRecord::new(root, command, "denied"))?;
        let why = match approval {
            ApprovalMode::Never => "running commands is turned off for this run",
            _ => "the user did not approve this command",
        };
        return Ok(Outcome::failed("not approved".into(), format!("not run: {why}.")));
    };
    let ran = match sandbox::run(root, command, limits, cancel).await {
        Ok(ran) => ran,
        Err(e) => {
            log(CommandRecord::new(root, command, "refused"))?;
            return Ok(Outcome::failed(format!("cannot run: {e}"), format!("not run: {e}")));
        }
    };
    let mut record = CommandRecord::new(root, command, "ran");
    record.approved_by = approved_by.to_string();
    record.exit_code = ran.exit_code;
    record.duration_ms = Some(ran.duration_ms);
    log(record)?;
    let status = match (ran.exit_code, ran.timed_out, ran.cancelled) {
        (_, true, _) => format!("killed after {:.0} s (time limit)", limits.timeout.as_secs_f64()),
        (_, _, true) => "stopped by the user".to_string(),
        (Some(code), _, _) => format!("exit code {code}"),
        (None, _, _) => "ended by a signal".to_string(),
    };
    let mut out = format!("$ {command}\n{}", tail(&ran.output, OUTPUT_CHARS));
    if ran.output_dropped > 0 {
        out += &format!("\n({} more bytes of output not kept)", ran.output_dropped);
    }
    out += &format!("\n[{status}]");
    Ok(Outcome { ok: ran.succeeded(), summary: status, output: out, command: Some(ran), ..Outcome::default() })
}

/// `rel` under `root`, when it stays inside it: no absolute or `..` part, and, where the path
/// exists, no symlink on the way that leads out of the project (reading through one would
/// show the model a file outside it).
fn inside(root: &Path, rel: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(rel);
    let climbs = p.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if rel.is_empty() || climbs {
        return None;
    }
    let full = root.join(p);
    match (full.canonicalize(), root.canonicalize()) {
        (Ok(real), Ok(real_root)) if !real.starts_with(&real_root) => None,
        _ => Some(full),
    }
}

/// The start of `text`, cut to the output size.
fn cap(text: &str) -> String {
    match text.char_indices().nth(OUTPUT_CHARS) {
        Some((at, _)) => format!("{}\n… (cut)", &text[..at]),
        None => text.to_string(),
    }
}

/// The end of `text` (where a test run's failures and summary are), cut to `chars`.
fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        return text.to_string();
    }
    let skip = text.char_indices().nth(count - chars).map_or(0, |(i, _)| i);
    format!("(… start cut)\n{}", &text[skip..])
}

impl Outcome {
    fn ok(summary: String, output: String) -> Outcome {
        Outcome { ok: true, summary, output, ..Outcome::default() }
    }
}
