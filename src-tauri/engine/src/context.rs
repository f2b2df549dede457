//! What a request shows the model and what went into its prompt: project excerpts, earlier
//! exchanges, and the report the UI's context panel and `--show-context` show. Plain data,
//! below both the assistant (which assembles prompts) and edits (whose proposals keep the
//! report), so neither has to import the other for it.

use serde::{Deserialize, Serialize};

/// Project text offered for the prompt: a retrieved chunk or a whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excerpt {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    #[serde(deserialize_with = "score_or_named")]
    /// The search score (higher is more relevant); infinite for a file the request names.
    pub score: f32,
    /// The lines themselves.
    pub text: String,
}

impl Excerpt {
    /// How the excerpt appears in the prompt: headed by `path:start-end`, fenced.
    pub fn render(&self) -> String {
        let lang = self.path.rsplit_once('.').map_or("", |(_, ext)| ext);
        let fence = if self.text.contains("```") { "````" } else { "```" };
        let body = self.text.strip_suffix('\n').unwrap_or(&self.text);
        format!("{}\n{fence}{lang}\n{body}\n{fence}\n", self.heading())
    }

    /// The line that heads the excerpt in the prompt: `path:start-end`.
    pub fn heading(&self) -> String {
        format!("{}:{}-{}", self.path, self.start_line, self.end_line)
    }
}

/// An earlier question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// The question as the user asked it.
    pub question: String,
    /// The user message exactly as the model was sent it (excerpts and question), when known.
    /// Sending it again verbatim keeps the conversation's prompt a growing prefix, so the
    /// engine reuses what it computed for the earlier turns instead of recomputing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// The model's answer.
    pub answer: String,
}

/// An excerpt as it was (or was not) put in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ExcerptUse {
    /// Project-relative, `/`-separated.
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    /// Infinite for a file the request names (ranked above any search hit); JSON writes that
    /// as null, which reads back as infinite.
    #[serde(deserialize_with = "score_or_named")]
    #[ts(type = "number | null")]
    pub score: f32,
    /// Tokens the excerpt takes in the prompt.
    pub tokens: usize,
}

fn score_or_named<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::INFINITY))
}

/// What went into a prompt, for the UI's "context" panel and `--show-context`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct PromptReport {
    /// The model's context window, or the smaller share the request allowed.
    pub context_window: usize,
    /// Tokens of the whole prompt as the model sees it.
    pub prompt_tokens: usize,
    /// Tokens left for the answer.
    pub answer_tokens: usize,
    /// Excerpts in the prompt, in the order they appear (most relevant first).
    pub included: Vec<ExcerptUse>,
    /// Retrieved excerpts left out because they did not fit.
    pub dropped: Vec<ExcerptUse>,
    /// Earlier exchanges of the conversation that went in.
    pub exchanges_included: usize,
    /// Earlier exchanges left out because they did not fit (oldest go first).
    pub exchanges_dropped: usize,
    /// Earlier turns went in exactly as they were sent (excerpts included), so the prompt
    /// extends the previous one and its computed prefix can be reused.
    #[serde(default)]
    pub earlier_turns_verbatim: bool,
    /// Retrieved excerpts not repeated because an earlier turn in the prompt already shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already_shown: Vec<ExcerptUse>,
    /// What was left out, in words (empty when everything fit).
    pub notes: Vec<String>,
}
