//! The agent's tools as the model sees them: their descriptions for the system prompt, the
//! JSON schema every answer is constrained to (so a call is always well-formed JSON naming a
//! real tool), and the reading of an answer into a [`ToolCall`], with an error the model can
//! act on when it still does not fit.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One thing the model asked the agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "tool", content = "args", rename_all = "snake_case")]
pub enum ToolCall {
    /// Search the project index.
    Search {
        /// Words, identifiers or paths.
        query: String,
    },
    /// Read a file, or some of its lines.
    ReadFile {
        /// Project-relative.
        path: String,
        /// 1-based first line; the start when absent.
        #[serde(default)]
        start_line: Option<usize>,
        /// 1-based last line (inclusive); the end when absent.
        #[serde(default)]
        end_line: Option<usize>,
    },
    /// List the project's files.
    ListFiles {
        /// Only paths starting with this.
        #[serde(default)]
        under: Option<String>,
    },
    /// Change a file: the edit machinery proposes it, and it is applied (undoably).
    Edit {
        /// Project-relative file to change (or create).
        path: String,
        /// What to change, in words.
        instruction: String,
    },
    /// Run a shell command in the project, confined.
    Run {
        /// The command, for `sh -c`.
        command: String,
    },
    /// The task is done (or cannot be).
    Done {
        /// What was done, for the user.
        summary: String,
    },
}

impl ToolCall {
    /// The tool's name, as the model writes it.
    pub fn name(&self) -> &'static str {
        match self {
            ToolCall::Search { .. } => "search",
            ToolCall::ReadFile { .. } => "read_file",
            ToolCall::ListFiles { .. } => "list_files",
            ToolCall::Edit { .. } => "edit",
            ToolCall::Run { .. } => "run",
            ToolCall::Done { .. } => "done",
        }
    }
}

/// The tools, one line each, for the system prompt.
pub const TOOL_LIST: &str = "\
- search {\"query\": words or identifiers}: the project's files and lines that match best.
- read_file {\"path\": file, \"start_line\"?: n, \"end_line\"?: n}: the file's lines, numbered.
- list_files {\"under\"?: folder}: the project's files.
- edit {\"path\": file, \"instruction\": what to change}: the file is changed as the instruction says (you see the diff).
- run {\"command\": shell command}: runs in the project folder without network; you see its output and exit code.
- done {\"summary\": what you did}: when the task is finished, or cannot be.";

/// The JSON schema every answer is constrained to: a short thought, then one tool call.
pub fn schema() -> Value {
    let string = json!({ "type": "string" });
    let line = json!({ "type": "integer", "minimum": 1 });
    let tool = |name: &str, args: Value, required: &[&str]| {
        json!({
            "type": "object",
            "properties": {
                "thought": { "type": "string", "maxLength": 300 },
                "tool": { "const": name },
                "args": { "type": "object", "properties": args, "required": required, "additionalProperties": false },
            },
            "required": ["thought", "tool", "args"],
            "additionalProperties": false,
        })
    };
    json!({
        "anyOf": [
            tool("search", json!({ "query": string }), &["query"]),
            tool("read_file", json!({ "path": string, "start_line": line, "end_line": line }), &["path"]),
            tool("list_files", json!({ "under": string }), &[]),
            tool("edit", json!({ "path": string, "instruction": string }), &["path", "instruction"]),
            tool("run", json!({ "command": string }), &["command"]),
            tool("done", json!({ "summary": string }), &["summary"]),
        ]
    })
}

/// An answer read as a call: the thought that came with it, and the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Why the model chose the call (may be empty).
    pub thought: String,
    /// What it asked for.
    pub call: ToolCall,
}

/// Reads the model's answer. Tolerates a fence around the JSON and text before or after it
/// (a server without constrained decoding); anything else is an error worded for the model.
pub fn read(answer: &str) -> Result<Answer, String> {
    let Some(object) = first_object(answer) else {
        return Err("your answer had no JSON object; answer with one object: {\"thought\": ..., \"tool\": ..., \"args\": {...}}".into());
    };
    let value: Value = serde_json::from_str(object).map_err(|e| format!("your answer is not valid JSON ({e}); answer with one object"))?;
    let thought = value.get("thought").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(tool) = value.get("tool").and_then(Value::as_str) else {
        return Err("your answer names no \"tool\"; the tools are search, read_file, list_files, edit, run, done".into());
    };
    let args = value.get("args").cloned().unwrap_or_else(|| json!({}));
    let call: ToolCall = serde_json::from_value(json!({ "tool": tool, "args": args })).map_err(|e| {
        match ["search", "read_file", "list_files", "edit", "run", "done"].contains(&tool) {
            true => format!("the arguments of {tool} do not fit it ({e}); see the tool list"),
            false => format!("there is no tool `{tool}`; the tools are search, read_file, list_files, edit, run, done"),
        }
    })?;
    Ok(Answer { thought, call })
}

/// The first balanced `{...}` in `text`, strings and escapes respected.
fn first_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_calls_and_explains_what_does_not_fit() {
        let a = read(r#"{"thought": "find it", "tool": "search", "args": {"query": "parse_args"}}"#).unwrap();
        assert_eq!(a.call, ToolCall::Search { query: "parse_args".into() });
        assert_eq!(a.thought, "find it");
        let fenced = "Let me look.\n```json\n{\"tool\": \"read_file\", \"args\": {\"path\": \"src/a.rs\", \"end_line\": 9}}\n```";
        assert_eq!(read(fenced).unwrap().call, ToolCall::ReadFile { path: "src/a.rs".into(), start_line: None, end_line: Some(9) });
        let braces = r#"{"tool": "run", "args": {"command": "echo '}' \"{\""}}"#;
        assert_eq!(read(braces).unwrap().call, ToolCall::Run { command: "echo '}' \"{\"".into() });

        assert!(read("I will now fix it.").unwrap_err().contains("no JSON object"));
        assert!(read(r#"{"tool": "delete_everything", "args": {}}"#).unwrap_err().contains("no tool `delete_everything`"));
        assert!(read(r#"{"tool": "edit", "args": {"path": "a.rs"}}"#).unwrap_err().contains("arguments of edit"));
        assert!(read(r#"{"tool": "run", "args": {"command": 5}}"#).unwrap_err().contains("arguments of run"));
        assert!(read(r#"{"tool": "run", "args": "#).unwrap_err().contains("no JSON object"));
    }

    #[test]
    fn every_tool_in_the_schema_reads_back() {
        let schema = schema();
        let tools: Vec<&str> = schema["anyOf"].as_array().unwrap().iter().map(|t| t["properties"]["tool"]["const"].as_str().unwrap()).collect();
        assert_eq!(tools, ["search", "read_file", "list_files", "edit", "run", "done"]);
        for t in tools {
            assert!(TOOL_LIST.contains(&format!("- {t} ")), "{t} is described");
        }
    }
}
