//! `perimeter bench edits`: does an assistant solve coding exercises? Aider's protocol on
//! Exercism-layout exercises: a fresh project with the stub files, the exercise's instructions,
//! the proposal applied, the hidden tests run; on failure one more try carrying the test
//! output. Perimeter (single-shot edits, and its agent) and Aider run the same exercises with
//! the same model file in one run.

mod agent;
mod assistants;
mod cpu;
mod exercise;
mod report;
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use perimeter_engine::agent::Mode;
use perimeter_engine::assistant::Exchange;
use perimeter_engine::edit::EditFormat;
use perimeter_engine::inference::{cpu_threads, LoadOptions, Model};
use perimeter_engine::session::{Overrides, Session};

use agent::Agent;
use assistants::{Aider, Perimeter, Server, TryReport};
use cpu::CpuClock;
use exercise::{copy_files, Exercise, Language};
use report::ExerciseResult;
use tests::Toolchain;

#[derive(Args)]
pub struct EditsArgs {
    /// The folder that holds `<language>/exercises/practice/<exercise>/` (a checkout of
    /// Aider-AI/polyglot-benchmark; scripts/bench-edits.sh makes one).
    #[arg(long)]
    exercises: PathBuf,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "javascript,rust,cpp,go")]
    languages: Vec<Language>,
    /// Run the first N exercises (interleaved by language, so any N covers them evenly).
    #[arg(long)]
    limit: Option<usize>,
    /// Only these exercises, by name (e.g. bowling,clock).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// An installed model's name, or the path of a .gguf file.
    #[arg(long)]
    model: Option<String>,
    /// Which assistants to run on each exercise.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "perimeter")]
    assistants: Vec<AssistantKind>,
    /// The `aider` executable (aider-chat 0.86.2; scripts/bench-edits.sh installs it).
    #[arg(long, default_value = "aider")]
    aider: PathBuf,
    /// node_modules with jest and babel for the JavaScript exercises.
    #[arg(long)]
    js_modules: Option<PathBuf>,
    /// Results, one JSON line per exercise and assistant; a run resumes where this file ends.
    /// While a file named like it with `.pause` added exists, the run waits before the next
    /// exercise (to free the machine without distorting the seconds of a try).
    #[arg(long)]
    out: PathBuf,
    /// Where the exercise projects are made (kept, to read failures); default: beside --out.
    #[arg(long)]
    work: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    tries: usize,
    /// Seconds one test run may take.
    #[arg(long, default_value_t = 180)]
    test_timeout: u64,
    /// Most tokens one answer may take (both assistants).
    #[arg(long, default_value_t = 3072)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Perimeter's edit format (default: by model size, as `perimeter edit` chooses).
    #[arg(long)]
    format: Option<EditFormat>,
    /// The agent's mode, free or scaffold (default: by model size, as the app chooses). Its
    /// edit-and-test rounds are --tries.
    #[arg(long, value_parser = crate::agent::parse_mode)]
    agent_mode: Option<Mode>,
    /// Port for the `perimeter serve` that Aider talks to.
    #[arg(long, default_value_t = 18631)]
    port: u16,
    /// Print the tables of the results already in --out (for the selected exercises) and stop,
    /// without loading a model.
    #[arg(long)]
    report: bool,
    /// Do not ask a model: check that every exercise's stubs fail its tests and its reference
    /// solution passes them (that the toolchains and the harness work).
    #[arg(long)]
    check_examples: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AssistantKind {
    /// Single-shot edits, as `perimeter edit --apply`.
    Perimeter,
    /// Agent mode, with the tests in the project and the test command allowed.
    PerimeterAgent,
    Aider,
}

impl AssistantKind {
    fn name(self) -> &'static str {
        match self {
            AssistantKind::Perimeter => "perimeter",
            AssistantKind::PerimeterAgent => "perimeter-agent",
            AssistantKind::Aider => "aider",
        }
    }
}

pub async fn run(args: EditsArgs) -> anyhow::Result<ExitCode> {
    let mut exercises = exercise::discover(&args.exercises, &args.languages)?;
    if let Some(only) = &args.only {
        exercises.retain(|e| only.contains(&e.name));
    }
    exercises.truncate(args.limit.unwrap_or(usize::MAX));
    if exercises.is_empty() {
        bail!("no exercises selected: give --exercises the folder that holds <language>/exercises/practice/ (now {})", args.exercises.display());
    }
    if args.report {
        let results = report::read(&args.out)?;
        let models: std::collections::BTreeSet<&str> = results.iter().map(|r| r.model.as_str()).collect();
        for model in models {
            let of_model: Vec<ExerciseResult> = results
                .iter()
                .filter(|r| r.model == model && exercises.iter().any(|e| e.id() == r.exercise))
                .cloned()
                .collect();
            print_tables(&of_model);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Absolute: the tools run inside it (Go refuses a relative GOPATH, Aider a relative message file).
    let work = std::path::absolute(args.work.clone().unwrap_or_else(|| args.out.with_extension("work")))?;
    let toolchain = Toolchain {
        js_modules: args.js_modules.as_ref().map(|m| std::path::absolute(m)).transpose()?,
        cache: work.join("cache"),
        timeout: Duration::from_secs(args.test_timeout),
    };
    for language in Language::ALL.iter().filter(|l| exercises.iter().any(|e| e.language == **l)) {
        toolchain.check(*language)?;
    }
    if args.check_examples {
        return check_examples(&exercises, &toolchain, &work);
    }

    let overrides = Overrides { model: args.model.clone(), ..Overrides::default() };
    let path = Session::open(overrides)?.model_file()?;
    let model = Model::Local(crate::load::load_model(Some(&path.to_string_lossy()), &LoadOptions::default(), true).await?);
    // The file names the quantisation; the name inside it may not (Qwen's Q4_K_M says "AWQ").
    let model_name = path.file_stem().map_or_else(|| model.name(), |s| s.to_string_lossy().into_owned());
    let perimeter = Perimeter { model: &model, format: args.format, max_tokens: args.max_tokens, temperature: args.temperature };
    let agent = Agent { model: &model, mode: args.agent_mode, rounds: args.tries };
    let (server, aider) = if args.assistants.contains(&AssistantKind::Aider) {
        let server = Server::start(&path, Some(cpu_threads()), args.max_tokens, args.port)?;
        let aider = Aider {
            executable: args.aider.clone(),
            base_url: server.base_url.clone(),
            model_id: server.model_id.clone(),
            context_length: model.context_length(),
            max_tokens: args.max_tokens,
        };
        (Some(server), Some(aider))
    } else {
        (None, None)
    };

    let clock = CpuClock::new(server.as_ref().map(Server::pid));
    let pause = pause_file(&args.out);

    let done = report::read(&args.out)?;
    let todo: Vec<(&Exercise, AssistantKind)> = exercises
        .iter()
        .flat_map(|e| args.assistants.iter().map(move |a| (e, *a)))
        .filter(|(e, a)| !done.iter().any(|r| r.exercise == e.id() && r.assistant == a.name() && r.model == model_name))
        .collect();
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} ETA {eta} {msg}").expect("valid template"));
    if todo.len() < exercises.len() * args.assistants.len() {
        say(&bar, format!("resuming: {} of {} already in {}", exercises.len() * args.assistants.len() - todo.len(), exercises.len() * args.assistants.len(), args.out.display()));
    }
    for (exercise, kind) in todo {
        wait_while_paused(&pause, &bar).await;
        let workspace = work.join(kind.name()).join(exercise.language.folder()).join(&exercise.name);
        // The index and the proposal records, outside the project as in a user's data folder.
        let index_dir = work.join(kind.name()).join(".perimeter").join(exercise.id().replace('/', "-")).join("index");
        fresh_project(exercise, &workspace)?;
        let _ = std::fs::remove_dir_all(index_dir.parent().expect("under .perimeter"));
        let instructions = exercise.instructions()?;
        let mut tries: Vec<TryReport> = Vec::new();
        if kind == AssistantKind::PerimeterAgent {
            // The agent runs its own tries (edit, tests, fix from their output); the hidden
            // tests, copied in fresh, judge where it ended.
            bar.set_message(format!("{} · {}", exercise.id(), kind.name()));
            let data = index_dir.parent().expect("under .perimeter");
            std::fs::create_dir_all(data)?;
            tries = agent.solve(exercise, &workspace, data, &toolchain, &clock).await.unwrap_or_else(|e| {
                vec![TryReport { no_edit_reason: Some(format!("error: {e:#}")), ..TryReport::default() }]
            });
            let test = run_hidden_tests(exercise, &workspace, &toolchain)?;
            let last = tries.last_mut().expect("one try at least");
            last.tests_passed = test.passed;
            last.tests_timed_out = test.timed_out;
            last.test_output_head = test.output_for_retry();
        }
        let tries_left = if kind == AssistantKind::PerimeterAgent { 0 } else { args.tries };
        let mut history: Vec<Exchange> = Vec::new();
        for attempt in 0..tries_left {
            bar.set_message(format!("{} · {} · try {}", exercise.id(), kind.name(), attempt + 1));
            let failure = tries.last().map(|t| retry_note(&t.test_output_head, &exercise.solution));
            let mut report = TryReport::default();
            let before = assistants::snapshot(&workspace, &exercise.solution);
            let started = Instant::now();
            let cpu_started = clock.now();
            let outcome = match (kind, &aider) {
                (AssistantKind::Perimeter, _) => {
                    // A retry follows up on the first request and answer, as a user would in
                    // the same task; the files are shown as they are now.
                    let instruction = failure.clone().unwrap_or_else(|| instructions.clone());
                    perimeter
                        .attempt(&workspace, &index_dir, &history, &instruction, &exercise.solution, &mut report)
                        .await
                        .map(|answer| history.push(Exchange { question: instruction, sent: None, answer }))
                }
                (AssistantKind::Aider, Some(aider)) => {
                    let message = failure.clone().unwrap_or_else(|| instructions.clone());
                    aider.attempt(&workspace, &message, &exercise.solution, attempt == 0, &mut report)
                }
                (AssistantKind::Aider, None) => unreachable!("the server starts when aider is asked for"),
                (AssistantKind::PerimeterAgent, _) => unreachable!("the agent runs its own tries"),
            };
            if let Err(e) = outcome {
                report.no_edit_reason = Some(format!("error: {e:#}"));
            }
            report.seconds = started.elapsed().as_secs_f64();
            report.cpu_seconds = clock.since(cpu_started);
            report.edited = assistants::snapshot(&workspace, &exercise.solution) != before;
            let test = run_hidden_tests(exercise, &workspace, &toolchain)?;
            report.tests_passed = test.passed;
            report.tests_timed_out = test.timed_out;
            report.test_seconds = test.seconds;
            report.test_output_head = test.output_for_retry();
            let passed = test.passed;
            tries.push(report);
            if passed {
                break;
            }
        }
        let result = ExerciseResult { exercise: exercise.id(), assistant: kind.name().into(), model: model_name.clone(), tries };
        say(&bar, format!(
            "{:<40} {:<9} {}",
            exercise.id(),
            kind.name(),
            match (result.passed_within(1), result.passed_within(2)) {
                (true, _) => "pass (try 1)",
                (false, true) => "pass (try 2)",
                _ => "fail",
            }
        ));
        report::append(&args.out, &result)?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let all: Vec<ExerciseResult> = report::read(&args.out)?
        .into_iter()
        .filter(|r| r.model == model_name && exercises.iter().any(|e| e.id() == r.exercise))
        .collect();
    print_tables(&all);
    Ok(ExitCode::SUCCESS)
}

/// The summary (pass rates, time, tokens) and how the tries ended, as BENCHMARKS.md carries them.
fn print_tables(results: &[ExerciseResult]) {
    println!("{}", report::table(&report::summarize(results)));
    println!("How the tries ended:\n\n{}", report::outcome_table(results));
}

/// `<out>.pause`: while it exists, the run waits between exercises.
fn pause_file(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".pause");
    PathBuf::from(name)
}

async fn wait_while_paused(pause: &Path, bar: &ProgressBar) {
    if !pause.exists() {
        return;
    }
    say(bar, format!("paused: remove {} to go on", pause.display()));
    while pause.exists() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    say(bar, "going on".into());
}

/// A line above the progress bar, or on stderr when there is no bar (not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The second try's note after the test output (the same words for every assistant).
fn retry_note(test_output: &str, solution: &[String]) -> String {
    format!(
        "{test_output}\n####\n\nThe tests above failed.\nThe tests are correct; do not change them.\n\
         Fix the code in {} so that they pass.\n",
        solution.join(" ")
    )
}

/// A new project folder with the exercise's starting files only.
fn fresh_project(exercise: &Exercise, workspace: &Path) -> anyhow::Result<()> {
    if workspace.exists() {
        std::fs::remove_dir_all(workspace).with_context(|| format!("clearing {}", workspace.display()))?;
    }
    std::fs::create_dir_all(workspace)?;
    copy_files(&exercise.dir, workspace, &exercise.starting_files()?)
}

/// Copies the hidden tests in, runs them, and takes away everything the run added, so the
/// next try sees the project as the assistant left it.
fn run_hidden_tests(exercise: &Exercise, workspace: &Path, toolchain: &Toolchain) -> anyhow::Result<tests::TestRun> {
    let before: Vec<PathBuf> = top_level(workspace)?;
    copy_files(&exercise.dir, workspace, &exercise.hidden)?;
    let run = toolchain.run(exercise, workspace);
    for file in &exercise.hidden {
        let _ = std::fs::remove_file(workspace.join(file));
    }
    for entry in top_level(workspace)?.into_iter().filter(|p| !before.contains(p)) {
        let is_dir = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir());
        let _ = if is_dir { std::fs::remove_dir_all(&entry) } else { std::fs::remove_file(&entry) };
    }
    run
}

fn top_level(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect())
}

/// `--check-examples`: the reference solution must pass and the stubs fail (or, for a
/// refactoring task, pass too), or the harness or a toolchain cannot judge the exercise.
fn check_examples(exercises: &[Exercise], toolchain: &Toolchain, work: &Path) -> anyhow::Result<ExitCode> {
    let mut broken = 0;
    for exercise in exercises {
        let workspace = work.join("examples").join(exercise.language.folder()).join(&exercise.name);
        fresh_project(exercise, &workspace)?;
        let stub = run_hidden_tests(exercise, &workspace, toolchain)?;
        let verdict = match exercise.example_targets() {
            None => "no clear reference-to-solution pairing".to_string(),
            Some(pairs) => {
                for (example, target) in &pairs {
                    std::fs::copy(exercise.dir.join(example), workspace.join(target))?;
                }
                let reference = run_hidden_tests(exercise, &workspace, toolchain)?;
                match (stub.passed, reference.passed) {
                    (false, true) => String::new(),
                    (true, true) => {
                        // Refactoring exercises (ledger, markdown): passing is not breaking them.
                        println!("note    {}: the stubs already pass (a refactoring task)", exercise.id());
                        String::new()
                    }
                    (true, false) => "the stubs pass but the reference solution fails".to_string(),
                    (false, false) => format!("the reference solution fails:\n{}", reference.output_for_retry()),
                }
            }
        };
        if verdict.is_empty() {
            println!("ok      {} (tests run in {:.1} s)", exercise.id(), stub.seconds);
        } else {
            broken += 1;
            println!("BROKEN  {}: {verdict}", exercise.id());
        }
    }
    println!("{} of {} exercises run their tests and pass with the reference solution", exercises.len() - broken, exercises.len());
    Ok(if broken == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
