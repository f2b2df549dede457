//! Perimeter's agent on an exercise: the project as a user's would be, tests included, and
//! the agent left to edit, run them (confined, as in the app) and fix from their output.
//! Its rounds map onto the protocol's tries (edit, then the tests), so its pass@1 and pass@2
//! read like the single-shot assistants'; the hidden tests, copied in fresh, judge the end.

use std::path::Path;
use std::time::Instant;

use perimeter_engine::agent::commands::{CommandLog, ProjectCommands};
use perimeter_engine::agent::{self, AgentEvent, AgentOptions, AgentReport, ApprovalMode, Decision, Mode, ModelBrain, ToolCall, Workbench};
use perimeter_engine::edit::{self, Proposals};
use perimeter_engine::index::ProjectIndex;
use perimeter_engine::inference::{CancellationToken, Model};

use super::assistants::TryReport;
use super::exercise::{copy_files, Exercise, Language};
use super::tests::{head_for_retry, own_workspace, Toolchain};

/// The agent with a model, for the benchmark.
pub struct Agent<'a> {
    pub model: &'a Model,
    /// `None`: by the model's size, as the app chooses.
    pub mode: Option<Mode>,
    /// Edit-and-test rounds (the protocol's tries).
    pub rounds: usize,
}

impl Agent<'_> {
    /// Works on `exercise` in `workspace` (its starting files already there); `data` is the
    /// project's data folder (index, proposals, history, command settings and log).
    pub async fn solve(&self, exercise: &Exercise, workspace: &Path, data: &Path, toolchain: &Toolchain) -> anyhow::Result<Vec<TryReport>> {
        // The tests are part of the project, as in a user's repository.
        copy_files(&exercise.dir, workspace, &exercise.hidden)?;
        toolchain.prepare(exercise, workspace)?;
        if exercise.language == Language::Rust {
            // Its tests run where the single-shot assistants' do, perhaps inside this checkout.
            own_workspace(workspace)?;
        }
        let settings = ProjectCommands { test_command: Some(toolchain.confined_command(exercise.language).into()), ..Default::default() };
        settings.save(data)?;

        let index = ProjectIndex::open(workspace, &data.join("index"))?;
        index.update(&mut |_| {}, &CancellationToken::new())?;
        let bench = Workbench {
            index: &index,
            proposals: Proposals::new(data),
            history: edit::history(data),
            data_dir: data.to_path_buf(),
            command_log: CommandLog::in_dir(data),
            commands_forbidden: None,
        };
        let options = AgentOptions {
            mode: self.mode,
            rounds: self.rounds,
            approval: ApprovalMode::AutoTests,
            command_limits: agent::sandbox::Limits { timeout: toolchain.timeout, ..Default::default() },
            ..AgentOptions::default()
        };
        let mode = self.mode.unwrap_or_else(|| Mode::for_model(self.model.parameter_count()));
        let brain = ModelBrain { model: self.model };
        // When each step started and ended: the tries' model time and test time.
        let mut started: Vec<Instant> = Vec::new();
        let mut seconds: Vec<f64> = Vec::new();
        let mut events = |e: AgentEvent| match e {
            AgentEvent::Call { .. } => started.push(Instant::now()),
            AgentEvent::Step { .. } => seconds.push(started.last().map_or(0.0, |s| s.elapsed().as_secs_f64())),
            _ => {}
        };
        // Only the test command runs (auto-tests); anything else the agent asks for is declined.
        let mut approve = |_: &str| Decision::Deny;
        let task = exercise.instructions()?;
        let report = agent::run(&brain, &bench, &task, mode, &options, &mut events, &mut approve, &CancellationToken::new()).await?;
        // Every step with its full output, to read failures.
        std::fs::write(data.join("agent-run.json"), serde_json::to_string_pretty(&report)?)?;
        Ok(tries(&report, &seconds, &bench.proposals))
    }
}

/// The run's steps as tries: each edit starts one, the tests that follow end it. Steps that are
/// neither (free tool use reading and searching) count toward the try they fall in.
fn tries(report: &AgentReport, seconds: &[f64], proposals: &Proposals) -> Vec<TryReport> {
    let mut tries: Vec<TryReport> = Vec::new();
    for (step, secs) in report.steps.iter().zip(seconds.iter().copied().chain(std::iter::repeat(0.0))) {
        let outcome = &step.outcome;
        match &step.call {
            Some(ToolCall::Edit { .. }) => {
                let mut t = TryReport { edited: outcome.change.is_some(), seconds: secs, answer_tokens: outcome.tokens, ..TryReport::default() };
                if !t.edited {
                    t.no_edit_reason = Some(outcome.summary.clone());
                }
                let proposal = outcome.proposal.as_ref().and_then(|id| proposals.load(id).ok());
                t.prompt_tokens = proposal.map_or(0, |p| p.usage.prompt_tokens.unwrap_or(p.context.prompt_tokens));
                tries.push(t);
            }
            Some(ToolCall::Run { .. }) if outcome.command.is_some() => {
                let command = outcome.command.as_ref().expect("checked");
                let t = current(&mut tries);
                t.tests_passed = outcome.ok;
                t.tests_timed_out = command.timed_out;
                t.test_seconds += secs;
                t.test_output_head = head_for_retry(&command.output);
            }
            _ => {
                let t = current(&mut tries);
                t.seconds += secs;
                t.answer_tokens += step.usage.as_ref().map_or(0, |u| u.completion_tokens);
                t.prompt_tokens += step.usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0);
            }
        }
    }
    if tries.is_empty() {
        tries.push(TryReport { no_edit_reason: Some(format!("{:?}: {}", report.finish, report.summary)), ..TryReport::default() });
    }
    tries
}

fn current(tries: &mut Vec<TryReport>) -> &mut TryReport {
    if tries.is_empty() {
        tries.push(TryReport::default());
    }
    tries.last_mut().expect("one at least")
}
