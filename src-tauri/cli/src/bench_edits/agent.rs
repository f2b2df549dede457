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
        // What each step cost, from the end of the one before: choosing the call (the model's
        // time in free mode), then carrying it out (an edit's model time, a run's test time).
        let mut watch = Stopwatch::start(clock);
        let mut chosen: Option<Span> = None;
        let mut costs: Vec<StepCost> = Vec::new();
        let mut events = |e: AgentEvent| match e {
            AgentEvent::Call { .. } => chosen = Some(watch.lap(clock)),
            AgentEvent::Step { .. } => {
                let span = watch.lap(clock);
                // No call: the model's answer was not a usable one, all of it choosing.
                costs.push(match chosen.take() {
                    Some(choose) => StepCost { choose, act: span },
                    None => StepCost { choose: span, act: Span::default() },
                })
            }
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

/// Wall-clock and CPU seconds of a stretch of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Span {
    seconds: f64,
    cpu_seconds: Option<f64>,
}

impl Span {
    fn plus(self, other: Span) -> Span {
        Span { seconds: self.seconds + other.seconds, cpu_seconds: add(self.cpu_seconds, other.cpu_seconds) }
    }
}

/// Measures the run in consecutive stretches.
struct Stopwatch {
    wall: Instant,
    cpu: Option<f64>,
}

impl Stopwatch {
    fn start(clock: &CpuClock) -> Stopwatch {
        Stopwatch { wall: Instant::now(), cpu: clock.now() }
    }

    /// The stretch since the last lap (or the start); the next one starts now.
    fn lap(&mut self, clock: &CpuClock) -> Span {
        let next = Stopwatch::start(clock);
        let span = Span {
            seconds: next.wall.duration_since(self.wall).as_secs_f64(),
            cpu_seconds: next.cpu.zip(self.cpu).map(|(now, then)| now - then),
        };
        *self = next;
        span
    }
}

/// What one step cost: the model choosing its call, then the call carried out.
#[derive(Debug, Clone, Copy, Default)]
struct StepCost {
    choose: Span,
    act: Span,
}

/// The run's steps as tries: each edit starts one, the tests that follow end it. Steps that are
/// neither (free tool use reading and searching) count toward the try they fall in; those
/// before the first edit toward the first try (their time, not their test outcome).
fn tries(report: &AgentReport, costs: &[StepCost], proposals: &Proposals) -> Vec<TryReport> {
    let mut tries: Vec<TryReport> = Vec::new();
    let mut before_first = TryReport { cpu_seconds: Some(0.0), ..TryReport::default() };
    for (step, cost) in report.steps.iter().zip(costs.iter().copied().chain(std::iter::repeat(StepCost::default()))) {
        let outcome = &step.outcome;
        match &step.call {
            Some(ToolCall::Edit { .. }) => {
                let model = cost.choose.plus(cost.act);
                let mut t = TryReport {
                    edited: outcome.change.is_some(),
                    seconds: model.seconds,
                    cpu_seconds: model.cpu_seconds,
                    answer_tokens: outcome.tokens,
                    ..TryReport::default()
                };
                if !t.edited {
                    t.no_edit_reason = Some(outcome.summary.clone());
                }
                let proposal = outcome.proposal.as_ref().and_then(|id| proposals.load(id).ok());
                t.prompt_tokens = proposal.map_or(0, |p| p.usage.prompt_tokens.unwrap_or(p.context.prompt_tokens));
                if tries.is_empty() {
                    t.seconds += before_first.seconds;
                    t.cpu_seconds = add(t.cpu_seconds, before_first.cpu_seconds);
                    t.test_seconds += before_first.test_seconds;
                    t.answer_tokens += before_first.answer_tokens;
                    t.prompt_tokens += before_first.prompt_tokens;
                }
                tries.push(t);
            }
            Some(ToolCall::Run { .. }) if outcome.command.is_some() => {
                let command = outcome.command.as_ref().expect("checked");
                let t = tries.last_mut().unwrap_or(&mut before_first);
                t.tests_passed = outcome.ok;
                t.tests_timed_out = command.timed_out;
                t.seconds += cost.choose.seconds;
                t.cpu_seconds = add(t.cpu_seconds, cost.choose.cpu_seconds);
                t.test_seconds += cost.act.seconds;
                t.test_output_head = head_for_retry(&command.output);
            }
            _ => {
                let t = tries.last_mut().unwrap_or(&mut before_first);
                let all = cost.choose.plus(cost.act);
                t.seconds += all.seconds;
                t.cpu_seconds = add(t.cpu_seconds, all.cpu_seconds);
                t.answer_tokens += step.usage.as_ref().map_or(0, |u| u.completion_tokens);
                t.prompt_tokens += step.usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0);
            }
        }
    }
    if tries.is_empty() {
        before_first.no_edit_reason = Some(format!("{:?}: {}", report.finish, report.summary));
        tries.push(before_first);
    }
    tries
}

/// A sum that stays unknown when either part is.
fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perimeter_engine::agent::sandbox::CommandRun;
    use perimeter_engine::agent::{Finish, Outcome, Step};

    fn step(number: usize, call: ToolCall, outcome: Outcome) -> Step {
        Step { number, thought: String::new(), call: Some(call), outcome, usage: None }
    }

    fn run(passed: bool) -> Outcome {
        let command = CommandRun {
            command: "npm test".into(),
            exit_code: Some(if passed { 0 } else { 1 }),
            output: if passed { "1 passed" } else { "1 failed" }.into(),
            output_dropped: 0,
            timed_out: false,
            cancelled: false,
            duration_ms: 0.0,
        };
        Outcome { ok: passed, command: Some(command), ..Outcome::default() }
    }

    fn cost(choose: f64, act: f64) -> StepCost {
        let span = |s: f64| Span { seconds: s, cpu_seconds: Some(2.0 * s) };
        StepCost { choose: span(choose), act: span(act) }
    }

    #[test]
    fn free_tool_use_counts_choosing_as_model_time_and_reading_before_the_first_edit_in_its_try() {
        let edit = || ToolCall::Edit { path: "a.js".into(), instruction: "fix".into() };
        let edited = || Outcome { ok: true, change: Some("change-1".into()), tokens: 50, ..Outcome::default() };
        let test = || ToolCall::Run { command: "npm test".into() };
        let steps = vec![
            step(1, ToolCall::ReadFile { path: "a.js".into(), start_line: None, end_line: None }, Outcome { ok: true, ..Outcome::default() }),
            step(2, test(), run(false)),
            step(3, edit(), edited()),
            step(4, test(), run(false)),
            step(5, edit(), edited()),
            step(6, test(), run(true)),
        ];
        let costs = [cost(3.0, 0.5), cost(1.0, 4.0), cost(2.0, 20.0), cost(1.5, 6.0), cost(1.0, 10.0), cost(0.5, 5.0)];
        let report = AgentReport {
            id: "r".into(),
            task: "t".into(),
            mode: Mode::Free,
            steps,
            finish: Finish::Done,
            summary: String::new(),
            completion_tokens: 100,
            elapsed_ms: 0.0,
        };
        let data = tempfile::tempdir().unwrap();
        let tries = tries(&report, &costs, &Proposals::new(data.path()));
        assert_eq!(tries.len(), 2, "the read and the first test run belong to the first try: {tries:?}");
        // Try 1: reading 3.5, choosing the first test run 1, the edit 22, choosing the next run 1.5.
        let (first, second) = (&tries[0], &tries[1]);
        assert_eq!((first.edited, first.tests_passed), (true, false));
        assert!((first.seconds - 28.0).abs() < 1e-9, "{}", first.seconds);
        assert_eq!(first.cpu_seconds, Some(56.0));
        assert!((first.test_seconds - 10.0).abs() < 1e-9, "{}", first.test_seconds);
        assert_eq!(first.test_output_head, "1 failed");
        assert!((second.seconds - 11.5).abs() < 1e-9 && (second.test_seconds - 5.0).abs() < 1e-9, "{second:?}");
        assert!(second.tests_passed);
    }

    #[test]
    fn a_run_without_an_edit_is_one_try_with_no_edit_and_its_time() {
        let report = AgentReport {
            id: "r".into(),
            task: "t".into(),
            mode: Mode::Free,
            steps: vec![step(1, ToolCall::Run { command: "npm test".into() }, run(false))],
            finish: Finish::StepLimit,
            summary: "gave up".into(),
            completion_tokens: 0,
            elapsed_ms: 0.0,
        };
        let data = tempfile::tempdir().unwrap();
        let tries = tries(&report, &[cost(2.0, 3.0)], &Proposals::new(data.path()));
        assert_eq!(tries.len(), 1);
        assert!(!tries[0].edited);
        assert_eq!(tries[0].no_edit_reason.as_deref(), Some("StepLimit: gave up"));
        assert!((tries[0].seconds - 2.0).abs() < 1e-9 && (tries[0].test_seconds - 3.0).abs() < 1e-9);
    }
}
