//! Results: one JSON line per exercise and assistant (so runs can be resumed and diffed), and
//! the summary table BENCHMARKS.md carries.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::assistants::TryReport;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExerciseResult {
    /// "javascript/bowling".
    pub exercise: String,
    /// "perimeter" or "aider".
    pub assistant: String,
    pub model: String,
    pub tries: Vec<TryReport>,
}

impl ExerciseResult {
    /// Passed within the first `n` tries.
    pub fn passed_within(&self, n: usize) -> bool {
        self.tries.iter().take(n).any(|t| t.tests_passed)
    }
}

/// The results already in `path` (none when it does not exist yet).
pub fn read(path: &Path) -> anyhow::Result<Vec<ExerciseResult>> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(Vec::new()) };
    let mut results = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if !line.trim().is_empty() {
            results.push(serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?);
        }
    }
    Ok(results)
}

/// Adds one result to `path`, flushed at once so an interrupted run keeps it.
pub fn append(path: &Path, result: &ExerciseResult) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{}", serde_json::to_string(result)?)?;
    file.sync_data()?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub assistant: String,
    pub model: String,
    pub exercises: usize,
    pub pass_at_1: f64,
    pub pass_at_2: f64,
    /// Share of tries whose answer changed no solution file.
    pub no_edit_share: f64,
    pub minutes: f64,
    pub seconds_per_exercise: f64,
    /// CPU minutes of the assistant and the model (unknown when a result predates the measure).
    pub cpu_minutes: Option<f64>,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
}

/// One summary per (assistant, model), over the exercises every compared assistant finished,
/// so a resumed or interrupted run still compares like with like.
pub fn summarize(results: &[ExerciseResult]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, String), Vec<&ExerciseResult>> = BTreeMap::new();
    for r in results {
        groups.entry((r.assistant.clone(), r.model.clone())).or_default().push(r);
    }
    let common = finished_by_all(results);
    groups
        .into_iter()
        .map(|((assistant, model), rs)| {
            let rs: Vec<&ExerciseResult> = rs.into_iter().filter(|r| common.contains(r.exercise.as_str())).collect();
            let n = rs.len().max(1) as f64;
            let tries: Vec<&TryReport> = rs.iter().flat_map(|r| &r.tries).collect();
            let seconds: f64 = tries.iter().map(|t| t.seconds + t.test_seconds).sum();
            Summary {
                assistant,
                model,
                exercises: rs.len(),
                pass_at_1: 100.0 * rs.iter().filter(|r| r.passed_within(1)).count() as f64 / n,
                pass_at_2: 100.0 * rs.iter().filter(|r| r.passed_within(2)).count() as f64 / n,
                no_edit_share: 100.0 * tries.iter().filter(|t| !t.edited).count() as f64 / tries.len().max(1) as f64,
                minutes: seconds / 60.0,
                seconds_per_exercise: seconds / n,
                cpu_minutes: tries.iter().map(|t| t.cpu_seconds).sum::<Option<f64>>().map(|s| s / 60.0),
                prompt_tokens: tries.iter().map(|t| t.prompt_tokens).sum(),
                answer_tokens: tries.iter().map(|t| t.answer_tokens).sum(),
            }
        })
        .collect()
}

/// How a try ended, as the failure table counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    /// The solution files were not changed.
    NoEdit,
    /// The code did not compile, or (JavaScript) the test file could not load it.
    DoesNotBuild,
    /// It built and ran, and tests failed.
    TestsFail,
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [Outcome::Passed, Outcome::NoEdit, Outcome::DoesNotBuild, Outcome::TestsFail, Outcome::TimedOut];

    /// Read from the try and its test output; `exercise` ("rust/forth") says the toolchain.
    pub fn of(t: &TryReport, exercise: &str) -> Outcome {
        if t.tests_passed {
            return Outcome::Passed;
        }
        if !t.edited {
            return Outcome::NoEdit;
        }
        if t.tests_timed_out {
            return Outcome::TimedOut;
        }
        let out = &t.test_output_head;
        // What each toolchain prints when it stops before any test ran.
        let build_failed = match exercise.split('/').next().unwrap_or_default() {
            "rust" => out.contains("error[E") || out.contains("error: could not compile"),
            "go" => out.contains("[build failed]") || out.contains("[setup failed]"),
            "cpp" => out.contains(": error:") || out.contains("undefined reference to"),
            "javascript" => out.contains("Test suite failed to run"),
            _ => false,
        };
        if build_failed {
            Outcome::DoesNotBuild
        } else {
            Outcome::TestsFail
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::NoEdit => "no usable edit",
            Outcome::DoesNotBuild => "does not build",
            Outcome::TestsFail => "tests fail",
            Outcome::TimedOut => "timed out",
        }
    }
}

/// How each assistant's tries ended, try by try, over the exercises every assistant finished
/// (as [`summarize`]): where the failures are.
pub fn outcome_table(results: &[ExerciseResult]) -> String {
    let common = finished_by_all(results);
    let mut counts: BTreeMap<(&str, usize), BTreeMap<Outcome, usize>> = BTreeMap::new();
    for r in results.iter().filter(|r| common.contains(r.exercise.as_str())) {
        for (n, t) in r.tries.iter().enumerate() {
            *counts.entry((&r.assistant, n + 1)).or_default().entry(Outcome::of(t, &r.exercise)).or_default() += 1;
        }
    }
    let mut out = String::from("| assistant | try | tries |");
    for o in Outcome::ALL {
        out.push_str(&format!(" {} |", o.label()));
    }
    out.push_str(&format!("\n|---|---|---|{}\n", "---|".repeat(Outcome::ALL.len())));
    for ((assistant, n), by) in counts {
        out.push_str(&format!("| {assistant} | {n} | {} |", by.values().sum::<usize>()));
        for o in Outcome::ALL {
            out.push_str(&format!(" {} |", by.get(&o).copied().unwrap_or(0)));
        }
        out.push('\n');
    }
    out
}

/// The exercises every (assistant, model) in `results` has a result for: what comparisons count.
fn finished_by_all(results: &[ExerciseResult]) -> BTreeSet<&str> {
    let runs: BTreeSet<(&str, &str)> = results.iter().map(|r| (r.assistant.as_str(), r.model.as_str())).collect();
    let done: BTreeSet<(&str, &str, &str)> =
        results.iter().map(|r| (r.assistant.as_str(), r.model.as_str(), r.exercise.as_str())).collect();
    results
        .iter()
        .map(|r| r.exercise.as_str())
        .filter(|e| runs.iter().all(|(a, m)| done.contains(&(*a, *m, *e))))
        .collect()
}

/// The summaries as a Markdown table.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| assistant | model | exercises | pass@1 | pass@2 | no usable edit (tries) | minutes | s / exercise | CPU minutes | tokens in / out |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1} | {:.0} | {} | {} / {} |\n",
            s.assistant,
            s.model,
            s.exercises,
            s.pass_at_1,
            s.pass_at_2,
            s.no_edit_share,
            s.minutes,
            s.seconds_per_exercise,
            s.cpu_minutes.map_or_else(|| "–".to_string(), |m| format!("{m:.1}")),
            s.prompt_tokens,
            s.answer_tokens
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(exercise: &str, assistant: &str, passes: &[bool]) -> ExerciseResult {
        ExerciseResult {
            exercise: exercise.into(),
            assistant: assistant.into(),
            model: "m".into(),
            tries: passes.iter().map(|&p| TryReport { edited: p, tests_passed: p, seconds: 1.0, ..TryReport::default() }).collect(),
        }
    }

    #[test]
    fn pass_rates_count_only_exercises_both_assistants_finished() {
        let results = vec![
            result("go/a", "perimeter", &[true]),
            result("go/b", "perimeter", &[false, true]),
            result("go/c", "perimeter", &[false, false]),
            result("go/a", "aider", &[false, false]),
            result("go/b", "aider", &[false, true]),
        ];
        let s = summarize(&results);
        let aider = s.iter().find(|s| s.assistant == "aider").unwrap();
        let ours = s.iter().find(|s| s.assistant == "perimeter").unwrap();
        assert_eq!((ours.exercises, aider.exercises), (2, 2));
        assert_eq!((ours.pass_at_1, ours.pass_at_2), (50.0, 100.0));
        assert_eq!((aider.pass_at_1, aider.pass_at_2), (0.0, 50.0));
        // Three of aider's four tries changed nothing.
        assert_eq!(aider.no_edit_share, 75.0);
    }

    fn tried(edited: bool, passed: bool, timed_out: bool, output: &str) -> TryReport {
        TryReport { edited, tests_passed: passed, tests_timed_out: timed_out, test_output_head: output.into(), ..TryReport::default() }
    }

    /// Test output as each toolchain prints it (shortened from real runs).
    #[test]
    fn outcomes_tell_a_build_failure_from_failing_tests() {
        let cases = [
            ("rust/accumulate", "error[E0308]: mismatched types\n  --> tests/accumulate.rs:43:20", Outcome::DoesNotBuild),
            ("rust/acronym", "running 10 tests\nall_caps_word --- FAILED\nthread 'all_caps_word' panicked", Outcome::TestsFail),
            ("go/alphametics", "./alphametics.go:5:14: undefined: strings\nFAIL\talphametics [build failed]", Outcome::DoesNotBuild),
            ("go/bowling", "--- FAIL: TestScore (0.00s)\nFAIL\tbowling\t0.004s", Outcome::TestsFail),
            ("cpp/allergies", "allergies.cpp:3:11: error: 'namespace allergies { }' redeclared", Outcome::DoesNotBuild),
            ("cpp/clock", "clock_test.cpp:12: FAILED:\n  REQUIRE( \"08:00\" == clock )", Outcome::TestsFail),
            ("javascript/binary", "FAIL ./binary.spec.js\n  ● Test suite failed to run\n    SyntaxError", Outcome::DoesNotBuild),
            ("javascript/affine-cipher", "FAIL ./affine-cipher.spec.js\n  ✕ encode yes (7 ms)", Outcome::TestsFail),
        ];
        for (exercise, output, expected) in cases {
            assert_eq!(Outcome::of(&tried(true, false, false, output), exercise), expected, "{exercise}");
        }
        // Passing and not editing come first: a stub that passes unchanged counts as passed.
        assert_eq!(Outcome::of(&tried(false, true, false, ""), "go/counter"), Outcome::Passed);
        assert_eq!(Outcome::of(&tried(false, false, false, "error[E0308]"), "rust/a"), Outcome::NoEdit);
        assert_eq!(Outcome::of(&tried(true, false, true, ""), "rust/a"), Outcome::TimedOut);
    }

    #[test]
    fn the_outcome_table_counts_tries_of_exercises_all_assistants_finished() {
        let mut a = result("go/a", "perimeter", &[false, false]);
        a.tries[0].edited = true;
        a.tries[0].test_output_head = "FAIL\ta [build failed]".into();
        let b = result("go/a", "aider", &[false, true]);
        let unfinished = result("go/b", "perimeter", &[true]);
        let table = outcome_table(&[a, b, unfinished]);
        assert!(table.contains("| aider | 1 | 1 | 0 | 1 | 0 | 0 | 0 |"), "{table}");
        assert!(table.contains("| aider | 2 | 1 | 1 | 0 | 0 | 0 | 0 |"), "{table}");
        assert!(table.contains("| perimeter | 1 | 1 | 0 | 0 | 1 | 0 | 0 |"), "{table}");
        assert!(table.contains("| perimeter | 2 | 1 | 0 | 1 | 0 | 0 | 0 |"), "{table}");
    }

    #[test]
    fn cpu_minutes_are_unknown_when_one_try_predates_the_measure() {
        let mut measured = result("go/a", "perimeter", &[false, true]);
        for t in &mut measured.tries {
            t.cpu_seconds = Some(45.0);
        }
        let old = result("go/a", "aider", &[false, false]);
        let s = summarize(&[measured, old]);
        assert_eq!(s.iter().find(|s| s.assistant == "perimeter").unwrap().cpu_minutes, Some(1.5));
        assert_eq!(s.iter().find(|s| s.assistant == "aider").unwrap().cpu_minutes, None);
        assert!(table(&s).contains("| 1.5 |"));
    }
}
