//! The two edit formats a model is asked for, and which one suits which model.
//!
//! Aider's edit benchmarks found that models of about 7B parameters and below write
//! well-formed whole-file rewrites far more reliably than search/replace blocks, and that
//! larger models do well with search/replace (which costs far fewer output tokens).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
/// How the model is asked to write its edits.
pub enum EditFormat {
    /// Each changed file complete, in a fenced block headed by its path (small models manage it).
    WholeFile,
    /// Search/replace blocks: the lines to find and what replaces them (fewer tokens for big
    /// files).
    SearchReplace,
}

/// Models up to this many parameters are asked for whole files (a "7B" model has ~7.6B).
const WHOLE_FILE_MAX_PARAMETERS: u64 = 8_000_000_000;

impl EditFormat {
    /// The format a model of `parameter_count` parameters writes best.
    pub fn for_model(parameter_count: u64) -> EditFormat {
        if parameter_count <= WHOLE_FILE_MAX_PARAMETERS {
            EditFormat::WholeFile
        } else {
            EditFormat::SearchReplace
        }
    }

    /// The system prompt that asks for edits in this format, with a worked example.
    pub fn instructions(self) -> &'static str {
        match self {
            EditFormat::WholeFile => WHOLE_FILE_PROMPT,
            EditFormat::SearchReplace => SEARCH_REPLACE_PROMPT,
        }
    }
}

impl std::str::FromStr for EditFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "whole" | "whole-file" => Ok(EditFormat::WholeFile),
            "search-replace" | "diff" => Ok(EditFormat::SearchReplace),
            other => Err(format!("unknown edit format `{other}` (whole-file, search-replace)")),
        }
    }
}

// No worked example with a made-up path: Qwen2.5-Coder-0.5B copied one (`src/greet.py`)
// into its answer as a new file. The user's message ends with the format again, naming a
// path from the project instead (`assistant::frame_edit`).
const WHOLE_FILE_PROMPT: &str = "You are Perimeter, a coding assistant that edits the user's project. \
The user's message shows project files, each under its path, then asks for a change.

Reply with every file you change, in full: the file's path exactly as the user's message shows \
it, on its own line, then a code block with the complete new content of that file. Never leave \
anything out or write \"...\": the block replaces the whole file. Change only what the request \
asks for and keep everything else as it is. To create a file, do the same with its new path. \
To delete a file, write DELETE followed by its path on its own line, only when the user asks for \
that. Do not show files you do not change.
";

const SEARCH_REPLACE_PROMPT: &str = "You are Perimeter, a coding assistant that edits the user's project. \
The user's message shows project files, each under its path, then asks for a change.

Reply with search/replace blocks. Each block is the file's path on its own line, then:
<<<<<<< SEARCH
the exact lines to find in the file, copied character for character, with a few lines around the change
=======
the lines to put in their place
>>>>>>> REPLACE
Use one block per place you change, and keep each SEARCH short but unique in the file. To create \
a file, give its new path and leave the SEARCH part empty. To delete a file, write DELETE followed \
by its path on its own line.

Example:

src/greet.py
<<<<<<< SEARCH
def greet(name):
    return \"Hello \" + name
=======
def greet(name):
    return f\"Hello, {name}!\"
>>>>>>> REPLACE
";
