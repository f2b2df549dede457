//! An exercise in Exercism's layout (as Aider's polyglot benchmark ships them):
//! `<root>/<language>/exercises/practice/<name>/` with `.docs/` (the task), `.meta/config.json`
//! (which files are the solution, the tests, the reference solution) and the stub files.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

/// The languages the benchmark runs (each has its test runner in `tests.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Javascript,
    Rust,
    Cpp,
    Go,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Javascript, Language::Rust, Language::Cpp, Language::Go];

    /// The folder name of the language in the exercise tree.
    pub fn folder(self) -> &'static str {
        match self {
            Language::Javascript => "javascript",
            Language::Rust => "rust",
            Language::Cpp => "cpp",
            Language::Go => "go",
        }
    }
}

pub struct Exercise {
    pub language: Language,
    pub name: String,
    pub dir: PathBuf,
    /// Files the assistant is asked to change, relative to the exercise folder.
    pub solution: Vec<String>,
    /// Files the assistant never sees: the tests and what only the tests use.
    pub hidden: Vec<String>,
    /// The reference solution (`.meta/…`), to check that the tests can pass.
    pub example: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    files: ConfigFiles,
}

#[derive(Deserialize)]
struct ConfigFiles {
    solution: Vec<String>,
    #[serde(default)]
    test: Vec<String>,
    #[serde(default)]
    example: Vec<String>,
    /// Go keeps test data beside the tests under this key.
    #[serde(default)]
    editor: Vec<String>,
}

impl Exercise {
    /// "javascript/bowling": how results name the exercise.
    pub fn id(&self) -> String {
        format!("{}/{}", self.language.folder(), self.name)
    }

    pub fn open(language: Language, dir: &Path) -> anyhow::Result<Exercise> {
        let config_path = dir.join(".meta/config.json");
        let text = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
        let config: Config = serde_json::from_str(&text).with_context(|| format!("parsing {}", config_path.display()))?;
        let mut hidden: Vec<String> = config.files.test.into_iter().chain(config.files.editor).collect();
        // Test support files are not listed in the config: C++ keeps its test framework under
        // `test/`, Rust its tests under `tests/`.
        for folder in ["test", "tests"] {
            for file in files_under(dir, &dir.join(folder))? {
                if !hidden.contains(&file) {
                    hidden.push(file);
                }
            }
        }
        let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("{}: no exercise name", dir.display()))?;
        Ok(Exercise {
            language,
            name: name.to_string(),
            dir: dir.to_path_buf(),
            solution: config.files.solution,
            hidden,
            example: config.files.example,
        })
    }

    /// The task in words: the exercise's introduction, instructions and track notes, then
    /// what to change (the same text for every assistant).
    pub fn instructions(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        for doc in ["introduction.md", "instructions.md", "instructions.append.md"] {
            if let Ok(part) = std::fs::read_to_string(self.dir.join(".docs").join(doc)) {
                text.push_str(part.trim_end());
                text.push_str("\n\n");
            }
        }
        if text.is_empty() {
            bail!("{}: no .docs/instructions.md", self.dir.display());
        }
        text.push_str(&format!(
            "####\n\nChange the supplied files to carry out the instructions above: {}\n\
             Keep the names of the existing functions, classes and types: unit tests call them.\n\
             Use only the language's standard library; do not add packages.\n",
            self.solution.join(" ")
        ));
        Ok(text)
    }

    /// What the assistant's project starts with: every file except the hidden ones and the
    /// exercise's own records (`.docs`, `.meta` and other dot entries).
    pub fn starting_files(&self) -> anyhow::Result<Vec<String>> {
        Ok(files_under(&self.dir, &self.dir)?
            .into_iter()
            .filter(|f| !f.split('/').any(|part| part.starts_with('.')) && !self.hidden.contains(f))
            .collect())
    }

    /// Pairs each reference file with the solution file it replaces (same extension; a
    /// single-file solution takes any). None when the pairing is not clear.
    pub fn example_targets(&self) -> Option<Vec<(String, String)>> {
        let extension = |p: &str| Path::new(p).extension().map(|e| e.to_string_lossy().into_owned());
        let mut pairs = Vec::new();
        for example in &self.example {
            let same: Vec<&String> = self.solution.iter().filter(|s| extension(s) == extension(example)).collect();
            match same.as_slice() {
                [one] => pairs.push((example.clone(), (*one).clone())),
                _ => return None,
            }
        }
        // Rust references that use crates bring their own manifest.
        if self.solution.iter().any(|s| s == "Cargo.toml") && self.dir.join(".meta/Cargo-example.toml").is_file() {
            pairs.push((".meta/Cargo-example.toml".to_string(), "Cargo.toml".to_string()));
        }
        (!pairs.is_empty()).then_some(pairs)
    }
}

/// Every exercise of `languages` under `root` (a language without a folder has none), interleaved by language (first of each, second
/// of each…) so that any prefix of the list covers the languages evenly.
pub fn discover(root: &Path, languages: &[Language]) -> anyhow::Result<Vec<Exercise>> {
    let mut per_language = Vec::new();
    for &language in languages {
        let practice = root.join(language.folder()).join("exercises/practice");
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&practice) {
            Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join(".meta/config.json").is_file()).collect(),
            Err(_) => {
                eprintln!("note: no {} exercises ({} is missing)", language.folder(), practice.display());
                continue;
            }
        };
        dirs.sort();
        let exercises: anyhow::Result<Vec<Exercise>> = dirs.iter().map(|d| Exercise::open(language, d)).collect();
        per_language.push(exercises?.into_iter());
    }
    let mut all = Vec::new();
    loop {
        let before = all.len();
        for exercises in per_language.iter_mut() {
            all.extend(exercises.next());
        }
        if all.len() == before {
            return Ok(all);
        }
    }
}

/// Files under `dir` (recursively), as '/'-separated paths relative to `base`. A missing
/// folder has none.
pub fn files_under(base: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(found) };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            found.extend(files_under(base, &path)?);
        } else if let Ok(rel) = path.strip_prefix(base) {
            found.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
    found.sort();
    Ok(found)
}

/// Copies `files` (relative paths) from `from` to `to`, making folders as needed.
pub fn copy_files(from: &Path, to: &Path, files: &[String]) -> anyhow::Result<()> {
    for file in files {
        let (src, dst) = (from.join(file), to.join(file));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&src, &dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/edit-bench")
    }

    #[test]
    fn exercises_interleave_by_language_and_missing_languages_have_none() {
        let all = discover(&fixtures(), &[Language::Go, Language::Cpp, Language::Javascript]).unwrap();
        let ids: Vec<String> = all.iter().map(Exercise::id).collect();
        assert_eq!(ids, ["go/clamp", "javascript/initials"]);
    }

    #[test]
    fn the_project_starts_without_tests_or_records_and_the_task_names_the_files() {
        let rust = Exercise::open(Language::Rust, &fixtures().join("rust/exercises/practice/digit-sum")).unwrap();
        assert_eq!(rust.solution, ["src/lib.rs", "Cargo.toml"]);
        assert_eq!(rust.hidden, ["tests/digit-sum.rs"], "the tests folder is hidden");
        assert_eq!(rust.starting_files().unwrap(), ["Cargo.toml", "src/lib.rs"]);
        assert_eq!(rust.example_targets().unwrap(), [(".meta/example.rs".to_string(), "src/lib.rs".to_string())]);
        let task = rust.instructions().unwrap();
        assert!(task.starts_with("# Instructions") && task.contains("digital_root"), "{task}");
        assert!(task.contains("supplied files to carry out the instructions above: src/lib.rs Cargo.toml"), "{task}");

        let js = Exercise::open(Language::Javascript, &fixtures().join("javascript/exercises/practice/initials")).unwrap();
        assert_eq!(js.starting_files().unwrap(), ["babel.config.js", "initials.js", "package.json"]);
    }
}
