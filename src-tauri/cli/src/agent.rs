//! `perimeter agent`: the agent works on a task in a project, its steps streamed as they
//! happen (lines for a person, or one JSON event per line with `--json`); `--rewind` puts a
//! run's changes back.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use perimeter_engine::agent::{AgentEvent, AgentOptions, ApprovalMode, Decision, Finish, Mode};
use perimeter_engine::session::AgentStreams;
use serde_json::json;

use crate::load::ModelChoice;
use crate::stream::{json_error, stop_on_ctrl_c};

#[derive(Args)]
pub struct AgentArgs {
    /// The task, in words ("make the tests pass", "add a --verbose flag").
    #[arg(required_unless_present = "rewind")]
    task: Option<String>,
    /// The project folder.
    #[arg(long)]
    project: PathBuf,
    /// When commands may run: ask (each time: on the terminal, or with --json an `approval`
    /// event answered by a line on stdin, once|always|no; without either the answer is no),
    /// auto-tests (the project's test command without asking), never.
    #[arg(long, default_value = "ask")]
    approve: ApprovalMode,
    /// Most tool calls.
    #[arg(long, default_value_t = 20)]
    max_steps: usize,
    /// free: the model picks every call; scaffold: edit, test, fix from the output. Default: by model size.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Scaffold: edit-and-test rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each command may run.
    #[arg(long, default_value_t = 120)]
    command_timeout: u64,
    /// Undo the changes run RUN made from step --to on (the run's id is in its last event).
    #[arg(long, value_name = "RUN", conflicts_with = "task")]
    rewind: Option<String>,
    /// With --rewind: the first step undone (1 = the whole run).
    #[arg(long, default_value_t = 1, requires = "rewind")]
    to: usize,
    #[command(flatten)]
    model: ModelChoice,
    /// One JSON event per line (started, call, step, finished).
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "free" => Ok(Mode::Free),
        "scaffold" => Ok(Mode::Scaffold),
        other => Err(format!("unknown mode `{other}` (free, scaffold)")),
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match agent(args).await {
        Err(e) if json => Ok(json_error(&e)),
        other => other,
    }
}

async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let session = Arc::new(args.model.session()?);
    stop_on_ctrl_c(&session);
    let index = crate::index::open(&session, &args.project)?;
    let root = index.root().to_path_buf();
    if let Some(run) = &args.rewind {
        let undone = session.rewind_agent(&root, run, args.to)?;
        if args.json {
            println!("{}", json!({ "event": "rewound", "run": run, "undone": undone }));
        } else {
            eprintln!("undid {} change(s) of run {run} from step {} on", undone.len(), args.to);
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::index::update(&session, &index, !args.json)?;
    let task = args.task.clone().expect("clap requires a task without --rewind");
    let options = AgentOptions {
        mode: args.mode,
        max_steps: args.max_steps,
        rounds: args.rounds,
        approval: args.approve,
        command_limits: perimeter_engine::agent::sandbox::Limits {
            timeout: std::time::Duration::from_secs(args.command_timeout.max(1)),
            ..Default::default()
        },
        ..AgentOptions::default()
    };
    let json = args.json;
    let mut spinner = crate::load::Spinner::new(!json);
    let mut shown = Shown { json, writing: None };
    let mut events = |e: AgentEvent| shown.show(&e);
    let mut approve = |command: &str| ask_approval(command, json);
    let streams = AgentStreams { model: &mut |e| spinner.show(e), events: &mut events, approve: &mut approve };
    let report = session.agent(&root, &task, &options, "agent", streams).await?;
    if !json {
        eprintln!("run {} — `perimeter agent --project DIR --rewind {} [--to STEP]` undoes its changes", report.id, report.id);
    }
    Ok(match report.finish {
        Finish::Done => ExitCode::SUCCESS,
        Finish::Stopped => ExitCode::from(130),
        _ => ExitCode::from(3),
    })
}

/// The run's events on the terminal: JSON lines with `--json`, else a line per call and step,
/// and a spinner counting the pieces of an answer while the model writes it.
struct Shown {
    json: bool,
    /// The answer being written: its step, the spinner, and pieces so far.
    writing: Option<(usize, indicatif::ProgressBar, usize)>,
}

impl Shown {
    fn show(&mut self, event: &AgentEvent) {
        if self.json {
            println!("{}", serde_json::to_string(event).expect("events serialize"));
            return;
        }
        if let AgentEvent::Writing { step, .. } = event {
            let (_, bar, pieces) = match &mut self.writing {
                Some(w) if w.0 == *step => w,
                w => w.insert((*step, crate::progress::spinner(&format!("step {step}: the model is writing")), 0)),
            };
            *pieces += 1;
            let unit = if *pieces == 1 { "token" } else { "tokens" };
            bar.set_message(format!("step {step}: the model is writing ({pieces} {unit})"));
            return;
        }
        if let Some((_, bar, _)) = self.writing.take() {
            bar.finish_and_clear();
        }
        show(event);
    }
}

fn show(event: &AgentEvent) {
    match event {
        AgentEvent::Started { mode } => eprintln!("agent: {mode:?} mode"),
        AgentEvent::Call { step, thought, call } => {
            let args = serde_json::to_value(call).ok().and_then(|v| v.get("args").cloned()).unwrap_or_default();
            let thought = if thought.is_empty() { String::new() } else { format!(" — {thought}") };
            println!("{step:>2}. {} {}{thought}", call.name(), brief(&args.to_string()));
        }
        AgentEvent::Step { step } => {
            let mark = if step.outcome.ok { "ok" } else { "!!" };
            let timing = step.usage.as_ref().and_then(|u| Some(format!(" (prompt {} tokens, first token after {:.1} s)", u.prompt_tokens?, u.time_to_first_token_ms? / 1000.0)));
            println!("    {mark} {}{}", step.outcome.summary, timing.unwrap_or_default());
            if let Some(diff) = &step.outcome.diff {
                print!("{diff}");
            }
        }
        AgentEvent::Finished { report } => {
            println!("{:?}: {} ({} steps, {} tokens, {:.1} s)", report.finish, report.summary, report.steps.len(), report.completion_tokens, report.elapsed_ms / 1000.0);
        }
        AgentEvent::Writing { .. } => {}
    }
}

/// The first line of `text`, at most 100 characters (the full call is in `--json`).
fn brief(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None if line.len() < text.len() => format!("{line}…"),
        None => line.to_string(),
    }
}

/// Asks on the terminal. With `--json` the question is an `approval` event on stdout and the
/// answer one line on stdin (`once`, `always` or `no`), so a script or another program can
/// answer. With neither (a pipe without `--json`), or when stdin ends, the answer is no.
fn ask_approval(command: &str, json: bool) -> Decision {
    if json {
        println!("{}", json!({ "event": "approval", "command": command }));
        let _ = std::io::stdout().flush();
    } else if std::io::stdin().is_terminal() {
        eprint!("run `{command}`? [y]es once, [a]lways in this project, [N]o: ");
        let _ = std::io::stderr().flush();
    } else {
        return Decision::Deny;
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "once" => Decision::Once,
        "a" | "always" => Decision::Always,
        _ => Decision::Deny,
    }
}
