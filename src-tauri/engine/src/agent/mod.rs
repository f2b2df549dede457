//! Agent mode: the model works on a task itself — searches, reads, edits and runs commands —
//! one tool call per step, until it says it is done, a bound is reached or the user stops it.
//!
//! - [`calls`]: the tools as the model sees them, the JSON schema its answers are held to,
//!   and the reading of an answer into a call.
//! - [`commands`]: which commands may run (policy, refusals, approval) and their log.
//! - [`sandbox`]: running one command confined to the project, without network.
//! - [`tools`]: carrying out a call on the project.
//!
//! Two ways to drive the tools, chosen by model size ([`Mode::for_model`]): free tool use,
//! where the model picks every call; and a fixed scaffold for small models (find the file,
//! edit it, run the tests, fix it from their output, a few rounds), which asks the model
//! only for edits. Every applied edit is a change in the project's history, so the run can
//! be rewound to before any step, byte for byte.

pub mod calls;
pub mod commands;
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
pub use tools::Workbench;

/// What produces the agent's decisions: the model, or (in tests) recorded answers.
pub trait Brain: Sync {
    /// The next answer to `messages`, held to `params.json_schema` where the model can be.
    fn answer(&self, messages: &[ChatMessage], params: &GenerationParams, cancel: &CancellationToken) -> impl Future<Output = Result<Generation>> + Send;

    /// A proposal for `instruction` (which names the file to change), from the edit machinery.
    fn propose(&self, index: &ProjectIndex, history: &[crate::context::Exchange], instruction: &str, cancel: &CancellationToken) -> impl Future<Output = Result<Proposal>> + Send;
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
    let mut state = RunState { steps: Vec::new(), tokens: 0, call_usage: None };
    let (finish, summary) = match mode {
        Mode::Free => free(brain, bench, task, options, &mut state, on_event, approve, cancel).await?,
        Mode::Scaffold => scaffold(brain, bench, task, options, &mut state, on_event, approve, cancel).await?,
    };
    let report = AgentReport {
        id: crate::records::new_id(),
        task: task.to_string(),
        mode,
        steps: state.steps,
        finish,
        summary,
        completion_tokens: state.tokens,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    on_event(AgentEvent::Finished { report: report.clone() });
    Ok(report)
}

struct RunState {
    steps: Vec<Step>,
    tokens: usize,
    /// The usage of the answer the next recorded step came from.
    call_usage: Option<Usage>,
}

impl RunState {
    fn record(&mut self, thought: String, call: Option<ToolCall>, outcome: Outcome, on_event: &mut (dyn FnMut(AgentEvent) + Send)) {
        self.tokens += outcome.tokens;
        let step = Step { number: self.steps.len() + 1, thought, call, outcome, usage: self.call_usage.take() };
        on_event(AgentEvent::Step { step: step.clone() });
        self.steps.push(step);
    }
}

#[allow(clippy::too_many_arguments)]
async fn free<B: Brain>(
    brain: &B,
    bench: &Workbench<'_>,
    task: &str,
    options: &AgentOptions,
    state: &mut RunState,
    on_event: &mut (dyn FnMut(AgentEvent) + Send),
    approve: &mut (dyn FnMut(&str) -> Decision + Send),
    cancel: &CancellationToken,
) -> Result<(Finish, String)> {
    let mut messages = vec![ChatMessage::system(system_prompt()), ChatMessage::user(format!("Task: {task}"))];
    let params = GenerationParams { max_tokens: CALL_MAX_TOKENS, temperature: None, json_schema: Some(calls::schema()) };
    let (mut repeats, mut unusable) = (0usize, 0usize);
    let mut last: Option<ToolCall> = None;
    loop {
        if cancel.is_cancelled() {
            return Ok((Finish::Stopped, String::new()));
        }
        if state.steps.len() >= options.max_steps {
            return Ok((Finish::StepLimit, format!("stopped after {} steps", options.max_steps)));
        }
        if state.tokens >= options.max_tokens {
            return Ok((Finish::TokenLimit, format!("stopped after {} tokens", state.tokens)));
        }
        let generation = brain.answer(&messages, &params, cancel).await?;
        state.tokens += generation.usage.completion_tokens;
        state.call_usage = Some(generation.usage.clone());
        if generation.stop == StopReason::Cancelled {
            return Ok((Finish::Stopped, String::new()));
        }
        messages.push(ChatMessage::assistant(generation.text.clone()));
        let answer = match calls::read(&generation.text) {
            Ok(a) => a,
            Err(problem) => {
                unusable += 1;
                let outcome = Outcome::failed(format!("unusable answer: {problem}"), problem.clone());
                state.record(String::new(), None, outcome, on_event);
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
            state.record(answer.thought, Some(answer.call.clone()), Outcome::done(summary), on_event);
            return Ok((Finish::Done, summary.clone()));
        }
        if repeats >= REPEATS_BEFORE_STUCK {
            let outcome = Outcome::failed("the same call again; stopped".into(), String::new());
            state.record(answer.thought, Some(answer.call), outcome, on_event);
            return Ok((Finish::Stuck, format!("the model made the same call {REPEATS_BEFORE_STUCK} times")));
        }
        on_event(AgentEvent::Call { step: state.steps.len() + 1, thought: answer.thought.clone(), call: answer.call.clone() });
        let outcome = tools::carry_out(brain, bench, &answer.call, &options.approval, &options.command_limits, approve, cancel).await?;
        messages.push(ChatMessage::user(format!("Result of {}:\n{}", answer.call.name(), outcome.output)));
        state.record(answer.thought, Some(answer.call), outcome, on_event);
    }
}

/// Lines of a failing test run's output shown to the model for the next round (its end,
/// where the failures and the summary are).
const TEST_OUTPUT_TAIL_LINES: usize = 60;

#[allow(clippy::too_many_arguments)]
async fn scaffold<B: Brain>(
    brain: &B,
    bench: &Workbench<'_>,
    task: &str,
    options: &AgentOptions,
    state: &mut RunState,
    on_event: &mut (dyn FnMut(AgentEvent) + Send),
    approve: &mut (dyn FnMut(&str) -> Decision + Send),
    cancel: &CancellationToken,
) -> Result<(Finish, String)> {
    // Locate: the file the task names, else the best search hit that is not a test.
    let target = bench.locate(task)?;
    let Some(path) = target else {
        return Ok((Finish::Stuck, "no file in the project matches the task".into()));
    };
    let tests = bench.test_command();
    let mut instruction = task.to_string();
    for round in 1..=options.rounds.max(1) {
        if cancel.is_cancelled() {
            return Ok((Finish::Stopped, String::new()));
        }
        let call = ToolCall::Edit { path: path.clone(), instruction: instruction.clone() };
        let thought = if round == 1 { format!("change {path}") } else { format!("fix {path} from the test output (round {round})") };
        on_event(AgentEvent::Call { step: state.steps.len() + 1, thought: thought.clone(), call: call.clone() });
        let outcome = tools::carry_out(brain, bench, &call, &options.approval, &options.command_limits, approve, cancel).await?;
        state.record(thought, Some(call), outcome, on_event);
        let Some(command) = tests.clone() else {
            return Ok((Finish::Done, format!("edited {path}; the project has no test command to check it")));
        };
        let call = ToolCall::Run { command };
        on_event(AgentEvent::Call { step: state.steps.len() + 1, thought: "run the tests".into(), call: call.clone() });
        let outcome = tools::carry_out(brain, bench, &call, &options.approval, &options.command_limits, approve, cancel).await?;
        let passed = outcome.ok;
        let output = outcome.output.clone();
        let ran = outcome.command.as_ref().is_some_and(|c| !c.cancelled);
        state.record("run the tests".into(), Some(call), outcome, on_event);
        if cancel.is_cancelled() {
            return Ok((Finish::Stopped, String::new()));
        }
        if passed {
            return Ok((Finish::Done, format!("the tests pass after {round} round(s)")));
        }
        if !ran {
            return Ok((Finish::Stuck, "the tests could not be run".into()));
        }
        let tail: Vec<&str> = output.lines().rev().take(TEST_OUTPUT_TAIL_LINES).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        instruction = format!("{task}\n\nThe tests fail:\n```\n{}\n```\nFix {path} so that they pass.", tail.join("\n"));
    }
    Ok((Finish::RoundsUsed, format!("the tests still fail after {} round(s)", options.rounds.max(1))))
}

impl Outcome {
    fn failed(summary: String, output: String) -> Outcome {
        Outcome { ok: false, summary, output, ..Outcome::default() }
    }

    fn done(summary: &str) -> Outcome {
        Outcome { ok: true, summary: summary.to_string(), ..Outcome::default() }
    }
}
