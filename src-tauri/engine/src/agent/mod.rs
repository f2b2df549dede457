//! Agent mode: the model works on a task itself — searches, reads, edits and runs commands —
//! one tool call per step, until it says it is done, a bound is reached or the user stops it.
//!
//! - [`calls`]: the tools as the model sees them, the JSON schema its answers are held to,
//!   and the reading of an answer into a call.
//! - [`commands`]: which commands may run (policy, refusals, approval) and their log.
//! - [`model_brain`]: a loaded model deciding the calls and writing the edits.
//! - [`sandbox`]: running one command confined to the project, without network.
//! - [`tools`]: carrying out a call on the project.
//!
//! Two ways to drive the tools, chosen by model size ([`Mode::for_model`]): free tool use,
//! where the model picks every call; and a fixed scaffold for small models (find the file,
//! edit it, run the tests, fix it from their output, a few rounds), which asks the model
//! only for edits. Every applied edit is a change in the project's history, so the
//! run can be rewound to before any step, byte for byte.

pub mod calls;
pub mod commands;
pub mod model_brain;
pub mod sandbox;
pub mod tools;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::edit::Proposal;
use crate::error::Result;
use crate::index::ProjectIndex;
use crate::inference::{ChatMessage, Generation, GenerationParams, StopReason, Usage};
use crate::CancellationToken;
pub use calls::ToolCall;
pub use commands::{ApprovalMode, Decision};
pub use model_brain::ModelBrain;
pub use tools::Workbench;

/// What produces the agent's decisions: the model, or (in tests) recorded answers.
pub trait Brain: Sync {
    /// The next answer to `messages`, held to `params.json_schema` where the model can be;
    /// its text goes to `on_text` a piece at a time as it is written.
    fn answer(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_text: &mut (dyn FnMut(&str) + Send),
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Generation>> + Send;

    /// A proposal for `instruction` (which names the file to change), from the edit machinery;
    /// the model's answer goes to `on_text` as it is written.
    fn propose(
        &self,
        index: &ProjectIndex,
        history: &[crate::context::Exchange],
        instruction: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Proposal>> + Send;
}

/// How the agent drives the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "AgentMode")]
pub enum Mode {
    /// The model chooses every tool call.
    Free,
    /// Find, edit, test, fix from the test output: the model writes only the edits.
    Scaffold,
}

/// Models below this many parameters get the scaffold (they lose their way in free tool use).
const SCAFFOLD_BELOW_PARAMETERS: u64 = 3_000_000_000;

impl Mode {
    /// The mode that works better for a model of `parameter_count` (free when unknown: a server's).
    pub fn for_model(parameter_count: Option<u64>) -> Mode {
        match parameter_count {
            Some(n) if n < SCAFFOLD_BELOW_PARAMETERS => Mode::Scaffold,
            _ => Mode::Free,
        }
    }
}

/// Bounds and choices for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentOptions {
    /// `None`: by the model's size.
    pub mode: Option<Mode>,
    /// Most tool calls.
    pub max_steps: usize,
    /// Most tokens the model may generate over the whole task.
    pub max_tokens: usize,
    /// Scaffold: edit-and-test rounds.
    pub rounds: usize,
    /// When commands may run without asking.
    pub approval: ApprovalMode,
    /// Limits for each command.
    #[serde(skip)]
    pub command_limits: sandbox::Limits,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions { mode: None, max_steps: 20, max_tokens: 16_000, rounds: 3, approval: ApprovalMode::Ask, command_limits: sandbox::Limits::default() }
    }
}

/// What came of one tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Outcome {
    /// The call did what it was asked.
    pub ok: bool,
    /// One line for the step list.
    pub summary: String,
    /// The full result as the model was shown it.
    pub output: String,
    /// The applied change, for an edit that wrote something (what rewinding undoes).
    pub change: Option<String>,
    /// The proposal an edit made.
    pub proposal: Option<String>,
    /// The diff an edit applied.
    pub diff: Option<String>,
    /// The command a run ran (`None` when it was refused or not run).
    pub command: Option<sandbox::CommandRun>,
    /// Tokens the model generated for this step's edit.
    pub tokens: usize,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Step {
    /// 1-based.
    pub number: usize,
    /// Why the model chose the call (empty in the scaffold).
    pub thought: String,
    /// What it asked for; `None` when its answer was not a usable call.
    pub call: Option<ToolCall>,
    /// What came of it.
    pub outcome: Outcome,
    /// The model's answer that chose the call (free tool use): its prompt and time to first
    /// token show whether the conversation's computed prefix was reused.
    pub usage: Option<Usage>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model said it was done (free), or the tests passed (scaffold).
    Done,
    /// The step bound was reached.
    StepLimit,
    /// The token bound was reached.
    TokenLimit,
    /// The scaffold's rounds were used up with the tests still failing.
    RoundsUsed,
    /// The model kept making the same call, or kept answering with unusable calls.
    Stuck,
    /// The user stopped it.
    Stopped,
}

/// A run as it went: every step, how it ended, what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AgentReport {
    /// Record id (what rewinding names).
    pub id: String,
    /// The task, as the user wrote it.
    pub task: String,
    /// How the tools were driven.
    pub mode: Mode,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// Why it ended.
    pub finish: Finish,
    /// The model's closing words (free), or what the scaffold found.
    pub summary: String,
    /// Tokens the model generated over the whole task.
    pub completion_tokens: usize,
    /// Wall time.
    pub elapsed_ms: f64,
}

impl AgentReport {
    /// The applied changes of steps `from` (1-based) onward, latest first: what rewinding
    /// to before step `from` undoes.
    pub fn changes_from(&self, from: usize) -> Vec<String> {
        self.steps.iter().rev().filter(|s| s.number >= from).filter_map(|s| s.outcome.change.clone()).collect()
    }
}

/// What a host hears as a run goes.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The run started in this mode.
    Started {
        /// How the tools are driven.
        mode: Mode,
    },
    /// The model asked for a call (shown before it runs).
    Call {
        /// Step number.
        step: usize,
        /// Why.
        thought: String,
        /// The call.
        call: ToolCall,
    },
    /// The model's answer for step `step` as it is written, a piece at a time (a call in free
    /// mode, the changed file in an edit): minutes on a CPU, so the window shows it grow.
    Writing {
        /// The step the answer is for.
        step: usize,
        /// The next piece of the answer.
        text: String,
    },
    /// A step finished.
    Step {
        /// The step, with its outcome.
        step: Step,
    },
    /// The run ended.
    Finished {
        /// The whole run.
        report: AgentReport,
    },
}

/// What the agent's system prompt says, byte for byte the same at every step so that the
/// model's computed prefix is reused.
const SYSTEM_PROMPT: &str = "You are Perimeter's agent: you work on a task in the user's project by calling tools, one per answer. \
Each answer is one JSON object: {\"thought\": why, in a sentence, \"tool\": name, \"args\": {...}}.\n\nTools:\n";
const SYSTEM_PROMPT_END: &str = "\n\nFind the relevant files first (search, read_file), change them with edit, check with run \
(the tests, if there are any), and call done when the task is finished. Paths are relative to the project folder.";

/// The system prompt: the same bytes for every task.
pub fn system_prompt() -> String {
    format!("{SYSTEM_PROMPT}{}{SYSTEM_PROMPT_END}", calls::TOOL_LIST)
}

/// The same call this many times in a row, or this many unusable answers in a row, ends the run.
const REPEATS_BEFORE_STUCK: usize = 3;
/// Tokens one answer may take: a call is short.
const CALL_MAX_TOKENS: usize = 400;

/// Works on `task` with the tools of `bench`, telling `on_event` as it goes, until done, a
/// bound, or `cancel`.
#[allow(clippy::too_many_arguments)]
pub async fn run<B: Brain>(
    brain: &B,
    bench: &Workbench<'_>,
    task: &str,
    mode: Mode,
    options: &AgentOptions,
    on_event: &mut (dyn FnMut(AgentEvent) + Send),
    approve: &mut (dyn FnMut(&str) -> Decision + Send),
    cancel: &CancellationToken,
) -> Result<AgentReport> {
    let started = std::time::Instant::now();
    on_event(AgentEvent::Started { mode });
    let mut run = Run { brain, bench, task, options, on_event, approve, cancel, steps: Vec::new(), tokens: 0, call_usage: None };
    let (finish, summary) = match mode {
        Mode::Free => run.free().await?,
        Mode::Scaffold => run.scaffold().await?,
    };
    let report = AgentReport {
        id: crate::records::new_id(),
        task: task.to_string(),
        mode,
        steps: run.steps,
        finish,
        summary,
        completion_tokens: run.tokens,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    (run.on_event)(AgentEvent::Finished { report: report.clone() });
    Ok(report)
}

/// One run in progress: what it works with, and the steps so far.
struct Run<'a, 'b, B> {
    brain: &'a B,
    bench: &'a Workbench<'b>,
    task: &'a str,
    options: &'a AgentOptions,
    on_event: &'a mut (dyn FnMut(AgentEvent) + Send),
    approve: &'a mut (dyn FnMut(&str) -> Decision + Send),
    cancel: &'a CancellationToken,
    steps: Vec<Step>,
    tokens: usize,
    /// The usage of the answer the next recorded step came from.
    call_usage: Option<Usage>,
}

impl<B: Brain> Run<'_, '_, B> {
    /// Tells the call, carries it out, and records the step; returns its outcome.
    async fn step(&mut self, thought: String, call: ToolCall) -> Result<Outcome> {
        let number = self.steps.len() + 1;
        (self.on_event)(AgentEvent::Call { step: number, thought: thought.clone(), call: call.clone() });
        let (approval, limits) = (&self.options.approval, &self.options.command_limits);
        // The answer's pieces go out as `writing` events while the call is carried out.
        let outcome =
            tools::carry_out(self.brain, self.bench, &call, approval, limits, &mut *self.approve, &mut writing_to(&mut *self.on_event, number), self.cancel)
                .await?;
        self.record(thought, Some(call), outcome.clone());
        Ok(outcome)
    }

    fn record(&mut self, thought: String, call: Option<ToolCall>, outcome: Outcome) {
        self.tokens += outcome.tokens;
        let step = Step { number: self.steps.len() + 1, thought, call, outcome, usage: self.call_usage.take() };
        (self.on_event)(AgentEvent::Step { step: step.clone() });
        self.steps.push(step);
    }

    /// Free tool use: the model chooses every call, seeing every result.
    async fn free(&mut self) -> Result<(Finish, String)> {
        let mut messages = vec![ChatMessage::system(system_prompt()), ChatMessage::user(format!("Task: {}", self.task))];
        let params = GenerationParams { max_tokens: CALL_MAX_TOKENS, temperature: None, json_schema: Some(calls::schema()) };
        let (mut repeats, mut unusable) = (0usize, 0usize);
        let mut last: Option<ToolCall> = None;
        loop {
            if self.cancel.is_cancelled() {
                return Ok((Finish::Stopped, String::new()));
            }
            if self.steps.len() >= self.options.max_steps {
                return Ok((Finish::StepLimit, format!("stopped after {} steps", self.options.max_steps)));
            }
            if self.tokens >= self.options.max_tokens {
                return Ok((Finish::TokenLimit, format!("stopped after {} tokens", self.tokens)));
            }
            let generation =
                self.brain.answer(&messages, &params, &mut writing_to(&mut *self.on_event, self.steps.len() + 1), self.cancel).await?;
            self.tokens += generation.usage.completion_tokens;
            self.call_usage = Some(generation.usage.clone());
            if generation.stop == StopReason::Cancelled {
                return Ok((Finish::Stopped, String::new()));
            }
            messages.push(ChatMessage::assistant(generation.text.clone()));
            let answer = match calls::read(&generation.text) {
                Ok(a) => a,
                Err(problem) => {
                    unusable += 1;
                    self.record(String::new(), None, Outcome::failed(format!("unusable answer: {problem}"), problem.clone()));
                    if unusable >= REPEATS_BEFORE_STUCK {
                        return Ok((Finish::Stuck, "the model's answers were not usable tool calls".into()));
                    }
                    messages.push(ChatMessage::user(format!("Error: {problem}")));
                    continue;
                }
            };
            unusable = 0;
            repeats = if last.as_ref() == Some(&answer.call) { repeats + 1 } else { 1 };
            last = Some(answer.call.clone());
            if let ToolCall::Done { summary } = &answer.call {
                let summary = summary.clone();
                self.record(answer.thought, Some(answer.call), Outcome::done(&summary));
                return Ok((Finish::Done, summary));
            }
            if repeats >= REPEATS_BEFORE_STUCK {
                self.record(answer.thought, Some(answer.call), Outcome::failed("the same call again; stopped".into(), String::new()));
                return Ok((Finish::Stuck, format!("the model made the same call {REPEATS_BEFORE_STUCK} times")));
            }
            let name = answer.call.name();
            let outcome = self.step(answer.thought, answer.call).await?;
            messages.push(ChatMessage::user(format!("Result of {name}:\n{}", outcome.output)));
        }
    }

    /// The scaffold: find the file, edit it, run the tests, fix it from their output. The
    /// tests are not shown to the model: Qwen 0.5B and 1.5B shown them whole rewrote or copied
    /// them instead of the file (BENCHMARKS.md, "Agent mode").
    async fn scaffold(&mut self) -> Result<(Finish, String)> {
        // Locate: the file the task names, else the best search hit that is not a test.
        let Some(path) = self.bench.locate(self.task)? else {
            return Ok((Finish::Stuck, "no file in the project matches the task".into()));
        };
        let tests = self.bench.test_command();
        let mut instruction = self.task.to_string();
        let rounds = self.options.rounds.max(1);
        for round in 1..=rounds {
            if self.cancel.is_cancelled() {
                return Ok((Finish::Stopped, String::new()));
            }
            let thought = if round == 1 { format!("change {path}") } else { format!("fix {path} from the test output (round {round})") };
            self.step(thought, ToolCall::Edit { path: path.clone(), instruction: instruction.clone() }).await?;
            let Some(command) = tests.clone() else {
                return Ok((Finish::Done, format!("edited {path}; the project has no test command to check it")));
            };
            let outcome = self.step("run the tests".into(), ToolCall::Run { command }).await?;
            if self.cancel.is_cancelled() {
                return Ok((Finish::Stopped, String::new()));
            }
            if outcome.ok {
                return Ok((Finish::Done, format!("the tests pass after {round} round(s)")));
            }
            if !outcome.command.as_ref().is_some_and(|c| !c.cancelled) {
                return Ok((Finish::Stuck, "the tests could not be run".into()));
            }
            let tail: Vec<&str> = outcome.output.lines().rev().take(TEST_OUTPUT_TAIL_LINES).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            instruction = format!("{}\n\nThe tests fail:\n```\n{}\n```\nFix {path} so that they pass.", self.task, tail.join("\n"));
        }
        Ok((Finish::RoundsUsed, format!("the tests still fail after {rounds} round(s)")))
    }
}

/// Tells `on_event` each piece of the answer the model writes for step `step`.
fn writing_to(on_event: &mut (dyn FnMut(AgentEvent) + Send), step: usize) -> impl FnMut(&str) + Send + '_ {
    move |text: &str| on_event(AgentEvent::Writing { step, text: text.to_string() })
}

/// Lines of a failing test run's output shown to the model for the next round (its end,
/// where the failures and the summary are).
const TEST_OUTPUT_TAIL_LINES: usize = 60;

impl Outcome {
    fn failed(summary: String, output: String) -> Outcome {
        Outcome { ok: false, summary, output, ..Outcome::default() }
    }

    fn done(summary: &str) -> Outcome {
        Outcome { ok: true, summary: summary.to_string(), ..Outcome::default() }
    }
}
