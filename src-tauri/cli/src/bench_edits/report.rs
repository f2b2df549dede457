//! Results: one JSON line per exercise and assistant (so runs can be resumed and diffed), and
//! the summary table BENCHMARKS.md carries.

use std::collections::BTreeMap;
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
    let common: Vec<&String> = results
        .iter()
        .map(|r| &r.exercise)
        .filter(|e| groups.values().all(|g| g.iter().any(|r| &r.exercise == *e)))
        .collect();
    groups
        .into_iter()
        .map(|((assistant, model), rs)| {
            let rs: Vec<&ExerciseResult> = rs.into_iter().filter(|r| common.contains(&&r.exercise)).collect();
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
