//! `perimeter edit`, `apply`, `undo` and `history`: changes proposed by the model, shown as
//! unified diffs, applied whole or hunk by hunk, and undone.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use perimeter_engine::assistant::RequestOptions;
use perimeter_engine::edit::{Applied, EditFormat, Proposal, Selection};
use perimeter_engine::inference::TokenSink;
use perimeter_engine::session::{EditRequest, ModelEvent, Streams};
use serde_json::json;

use crate::load::ModelChoice;
use crate::stream::{json_error, stdout_sink, stop_on_ctrl_c};

#[derive(Args)]
pub struct EditArgs {
    /// What to change, in words.
    instruction: String,
    #[arg(long)]
    project: PathBuf,
    /// Apply the whole proposal once it is made.
    #[arg(long, conflicts_with = "apply_hunks")]
    apply: bool,
    /// Apply only these hunks (numbers as printed), e.g. 1,3.
    #[arg(long, value_delimiter = ',')]
    apply_hunks: Option<Vec<usize>>,
    /// Also apply the changes held for confirmation (a deleted or emptied file, a blind edit…).
    #[arg(long)]
    confirm: bool,
    /// Edit format: whole-file or search-replace (default: by model size).
    #[arg(long)]
    format: Option<EditFormat>,
    /// Use this text as the model's answer instead of generating one (an answer you got
    /// elsewhere, or a saved one); the files are read as they are now.
    #[arg(long)]
    answer_file: Option<PathBuf>,
    /// Follow up on the latest proposal: the model sees that request and its answer before
    /// this one (e.g. "the tests still fail: …" after applying it).
    #[arg(long, conflicts_with = "answer_file")]
    follow_up: bool,
    /// Print the model's answer as it streams (the diff follows).
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    model: ModelChoice,
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    #[arg(long)]
    temperature: Option<f64>,
    /// Use at most this many tokens of the model's context window.
    #[arg(long)]
    context_tokens: Option<usize>,
    /// Files to show the model (besides those the instruction names).
    #[arg(long, default_value_t = 3)]
    files: usize,
    /// After the diff, list the files that went into the prompt.
    #[arg(long)]
    show_context: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[arg(long)]
    project: PathBuf,
    /// The proposal to apply (default: the latest).
    id: Option<String>,
    /// Only these hunks, e.g. 1,3.
    #[arg(long, value_delimiter = ',', conflicts_with = "files")]
    hunks: Option<Vec<usize>>,
    /// Only these files.
    #[arg(long, value_delimiter = ',')]
    files: Option<Vec<String>>,
    /// Also apply the changes held for confirmation (a deleted or emptied file, a blind edit…).
    #[arg(long)]
    confirm: bool,
    #[arg(long)]
    json: bool,
}

/// Exit code when a change was held for confirmation and not applied.
const EXIT_HELD: u8 = 5;

#[derive(Args)]
pub struct UndoArgs {
    #[arg(long)]
    project: PathBuf,
    /// The change to undo (default: the latest not yet undone).
    id: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long)]
    project: PathBuf,
    #[arg(long)]
    json: bool,
}

pub async fn run_edit(args: EditArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match edit(args).await {
        Err(e) if json => Ok(json_error(&e)),
        other => other,
    }
}

async fn edit(args: EditArgs) -> anyhow::Result<ExitCode> {
    let session = Arc::new(args.model.session()?);
    stop_on_ctrl_c(&session);
    let index = crate::index::open(&session, &args.project)?;
    crate::index::update(&session, &index, !args.json)?;
    let root = index.root();
    let proposal = match &args.answer_file {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let source = format!("answer file {}", file.display());
            session.propose_from_answer(root, &args.instruction, text, &source, args.format.unwrap_or(EditFormat::WholeFile))?
        }
        None => {
            let request = EditRequest {
                instruction: args.instruction.clone(),
                format: args.format,
                follow_up: args.follow_up,
                options: RequestOptions {
                    max_tokens: args.max_tokens,
                    temperature: args.temperature,
                    max_context_tokens: args.context_tokens,
                    retrieve: args.files,
                },
            };
            let mut spinner = crate::load::Spinner::new(!args.json);
            let quiet = !args.json && !args.stream;
            let mut on_model = |e: ModelEvent| {
                if let (true, ModelEvent::Loaded { name, .. }) = (quiet, &e) {
                    eprintln!("asking {name} for the change…");
                }
                spinner.show(e);
            };
            let mut silent = |_: &str| true;
            let mut sink = stdout_sink(args.json);
            let text: &mut (dyn TokenSink + Send) = if quiet { &mut silent } else { &mut sink };
            session.propose_edit(root, &request, "edit", Streams { model: &mut on_model, text }).await?
        }
    };
    if args.stream && !args.json && !proposal.answer.ends_with('\n') {
        println!();
    }

    let selection = match (&args.apply_hunks, args.apply) {
        (Some(h), _) => Some(Selection::Hunks(h.clone())),
        (None, true) => Some(Selection::All),
        (None, false) => None,
    };
    let Applied { change: applied, held } = match &selection {
        Some(sel) if !proposal.files.is_empty() => session.apply(root, Some(&proposal.id), sel, args.confirm)?,
        _ => Applied { change: None, held: proposal.unconfirmed(args.confirm) },
    };

    if args.json {
        println!("{}", json!({ "event": "proposal", "proposal": proposal, "applied": applied, "held": held }));
    } else {
        print_proposal(&proposal);
        if args.show_context {
            crate::ask::print_context(&proposal.context);
        }
        match (&applied, proposal.empty_reason()) {
            (_, Some(reason)) => eprintln!("{reason}"),
            (Some(a), None) => eprintln!("applied as change {} — `perimeter undo --project DIR` reverts it", a.id),
            (None, None) => eprintln!(
                "proposal {} — apply with `perimeter apply --project DIR` (or --hunks 1,3)",
                proposal.id
            ),
        }
        print_held_note(&held, selection.is_some());
    }
    // No usable edit is an answer, not a crash: exit 3 so scripts can tell it apart; a
    // change held for confirmation and not applied, exit 5.
    Ok(if proposal.files.is_empty() {
        ExitCode::from(3)
    } else if !held.is_empty() {
        ExitCode::from(EXIT_HELD)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_held_note(held: &[String], applying: bool) {
    if held.is_empty() {
        return;
    }
    eprintln!(
        "{} {} held for your confirmation (see the reasons above){}; `--confirm` applies {} anyway",
        held.join(", "),
        if held.len() == 1 { "is" } else { "are" },
        if applying { " and was not applied" } else { "" },
        if held.len() == 1 { "it" } else { "them" },
    );
}

/// The proposal as a unified diff, hunks numbered for `--apply-hunks`, coloured on a terminal.
fn print_proposal(p: &Proposal) {
    let color = std::io::stdout().is_terminal();
    let paint = |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    for f in &p.files {
        println!("{}", paint("1", &format!("{:?} {}", f.kind, f.path).to_lowercase()));
        if let Some(hold) = &f.hold {
            println!("{}", paint("1;31", &format!("HELD: {} — not applied without --confirm", hold.reason)));
            println!("{}", paint("31", &format!("      safer: {}", hold.safe_action)));
        }
        for note in &f.notes {
            println!("{}", paint("2", &format!("note: {note}")));
        }
        let mut hunks = f.hunks.iter();
        for line in f.diff.lines() {
            if line.starts_with("@@") {
                let n = hunks.next().map_or(0, |h| h.number);
                println!("{}  {}", paint("36", line), paint("2", &format!("[hunk {n}]")));
            } else if line.starts_with("+++") || line.starts_with("---") {
                println!("{}", paint("1", line));
            } else if line.starts_with('+') {
                println!("{}", paint("32", line));
            } else if line.starts_with('-') {
                println!("{}", paint("31", line));
            } else {
                println!("{line}");
            }
        }
        println!();
    }
    for problem in &p.problems {
        let path = problem.path.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        println!("{}", paint("33", &format!("block {}{path}: {}", problem.block, problem.reason)));
        if let Some(c) = &problem.closest {
            println!("  closest lines, from line {}:", c.start_line);
            for l in &c.lines {
                println!("  | {l}");
            }
        }
    }
}

pub fn run_apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let session = crate::index::session()?;
    let index = crate::index::open(&session, &args.project)?;
    let selection = match (&args.hunks, &args.files) {
        (Some(h), _) => Selection::Hunks(h.clone()),
        (None, Some(f)) => Selection::Files(f.clone()),
        (None, None) => Selection::All,
    };
    let Applied { change, held } = session.apply(index.root(), args.id.as_deref(), &selection, args.confirm)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "applied": change, "held": held }))?);
    } else {
        for f in change.iter().flat_map(|a| &a.files) {
            println!("{:<7} {}", format!("{:?}", f.kind).to_lowercase(), f.path);
        }
        if let Some(a) = &change {
            println!("applied as change {}", a.id);
        }
        if !held.is_empty() {
            let proposals = session.proposals(index.root())?;
            let proposal = match (&args.id, change.as_ref()) {
                (_, Some(a)) => proposals.load(&a.proposal_id)?,
                (Some(id), None) => proposals.load(id)?,
                (None, None) => proposals.latest()?.ok_or(perimeter_engine::Error::NoProposal)?,
            };
            for f in proposal.held().filter(|f| held.contains(&f.path)) {
                let hold = f.hold.as_ref().expect("held");
                eprintln!("held: {} — {}; safer: {}", f.path, hold.reason, hold.safe_action);
            }
        }
        print_held_note(&held, true);
    }
    Ok(if held.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_HELD) })
}

pub fn run_undo(args: UndoArgs) -> anyhow::Result<ExitCode> {
    let session = crate::index::session()?;
    let index = crate::index::open(&session, &args.project)?;
    let undone = session.undo(index.root(), args.id.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&undone)?);
    } else {
        for f in &undone.files {
            println!("restored {}", f.path);
        }
        println!("undid change {} ({})", undone.id, undone.instruction);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let session = crate::index::session()?;
    let index = crate::index::open(&session, &args.project)?;
    let changes = session.history(index.root())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
    } else if changes.is_empty() {
        println!("no changes applied yet");
    } else {
        for c in changes {
            let state = if c.undone_at.is_some() { "undone " } else { "applied" };
            let files: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
            println!("{}  {state}  {}  — {}", c.id, files.join(", "), c.instruction);
        }
    }
    Ok(ExitCode::SUCCESS)
}
