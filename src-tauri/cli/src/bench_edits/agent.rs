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
use super::cpu::CpuClock;
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
    pub async fn solve(
        &self,
        exercise: &Exercise,
        workspace: &Path,
        data: &Path,
        toolchain: &Toolchain,
        clock: &CpuClock,
    ) -> anyhow::Result<Vec<TryReport>> {
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
        // When each step started and what it cost: the tries' model time and test time.
        let mut started: Option<(Instant, Option<f64>)> = None;
        let mut costs: Vec<StepCost> = Vec::new();
        let mut events = |e: AgentEvent| match e {
            AgentEvent::Call { .. } => started = Some((Instant::now(), clock.now())),
            AgentEvent::Step { .. } => costs.push(started.map_or(StepCost::default(), |(wall, cpu)| StepCost {
                seconds: wall.elapsed().as_secs_f64(),
                cpu_seconds: clock.since(cpu),
            })),
            _ => {}
        };
        // Only the test command runs (auto-tests); anything else the agent asks for is declined.
        let mut approve = |_: &str| Decision::Deny;
        let task = exercise.instructions()?;
        let report = agent::run(&brain, &bench, &task, mode, &options, &mut events, &mut approve, &CancellationToken::new()).await?;
        // Every step with its full output, to read failures.
        std::fs::write(data.join("agent-run.json"), serde_json::to_string_pretty(&report)?)?;
        Ok(tries(&report, &costs, &bench.proposals))
    }
}

/// Wall-clock and CPU seconds of one step.
#[derive(Debug, Clone, Copy, Default)]
struct StepCost {
    seconds: f64,
    cpu_seconds: Option<f64>,
}

/// The run's steps as tries: each edit starts one, the tests that follow end it. Steps that are
/// neither (free tool use reading and searching) count toward the try they fall in.
fn tries(report: &AgentReport, costs: &[StepCost], proposals: &Proposals) -> Vec<TryReport> {
    let mut tries: Vec<TryReport> = Vec::new();
    for (step, cost) in report.steps.iter().zip(costs.iter().copied().chain(std::iter::repeat(StepCost::default()))) {
        let outcome = &step.outcome;
        let secs = cost.seconds;
        match &step.call {
            Some(ToolCall::Edit { .. }) => {
                let mut t = TryReport {
                    edited: outcome.change.is_some(),
                    seconds: secs,
                    cpu_seconds: cost.cpu_seconds,
                    answer_tokens: outcome.tokens,
                    ..TryReport::default()
                };
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
                t.cpu_seconds = add(t.cpu_seconds, cost.cpu_seconds);
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

/// A sum that stays unknown when either part is.
fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

fn current(tries: &mut Vec<TryReport>) -> &mut TryReport {
    if tries.is_empty() {
        tries.push(TryReport { cpu_seconds: Some(0.0), ..TryReport::default() });
    }
    tries.last_mut().expect("one at least")
}
