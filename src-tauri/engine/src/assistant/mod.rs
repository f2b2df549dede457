//! The assistant: questions answered from the project ([`ask`]) and changes proposed as
//! diffs ([`propose_edit`]). Both retrieve from the project's index, fit what they found into
//! the model's context window ([`prompt`]), stream the model's answer and record exactly what
//! it was shown.

pub mod citations;
pub mod conversations;
pub mod prompt;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use citations::Citation;
pub use conversations::{Conversation, ConversationSummary, Conversations, Turn};
pub use prompt::{Exchange, Excerpt, ExcerptUse, PromptReport};

use crate::edit::parse::RepeatWatch;
use crate::edit::{propose, EditAnswer, EditFormat, Proposal, Snapshot};
use crate::error::Result;
use crate::index::{ProjectIndex, SearchOptions};
use crate::inference::{CancellationToken, GenerationParams, Model, StopReason, TokenSink};
use crate::records::now;
use prompt::{assemble, PromptRequest};

/// Settings shared by questions and edits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOptions {
    /// Most tokens the answer may take (less if the context window is short).
    pub max_tokens: usize,
    /// `None` decodes greedily; otherwise sampled at this temperature.
    pub temperature: Option<f64>,
    /// Use at most this much of the model's context window (prompts cost time on a CPU).
    pub max_context_tokens: Option<usize>,
    /// Excerpts (questions) or whole files (edits) to retrieve.
    pub retrieve: usize,
}

impl RequestOptions {
    /// Defaults for a question: a short answer, eight excerpts.
    pub fn for_questions() -> Self {
        RequestOptions { max_tokens: 512, temperature: None, max_context_tokens: None, retrieve: 8 }
    }
    /// Defaults for a change request: room for whole files, three of them.
    pub fn for_edits() -> Self {
        RequestOptions { max_tokens: 2048, temperature: None, max_context_tokens: None, retrieve: 3 }
    }

    fn window(&self, model: &Model) -> usize {
        let w = model.context_length();
        self.max_context_tokens.map_or(w, |m| m.min(w))
    }
}

const ASK_SYSTEM_PROMPT: &str = "You are Perimeter, a coding assistant running entirely on the user's machine. \
Answer the user's question about their project from the project excerpts in their message. \
Each excerpt is headed by path:start-end. When you refer to code, cite it the same way (path:start-end). \
If the excerpts do not contain the answer, say so rather than guess. Be concise.";

fn frame_question(excerpts: &str, question: &str) -> String {
    if excerpts.is_empty() {
        return format!("(No project excerpts matched this question.)\n\nQuestion: {question}");
    }
    format!("Project excerpts, most relevant first:\n\n{excerpts}Question: {question}")
}

fn frame_whole_file_edit(files: &str, instruction: &str) -> String {
    frame_edit(files, instruction, "each file you change in full: its path on its own line (for example {path}), then a code block with its complete new content")
}

fn frame_search_replace_edit(files: &str, instruction: &str) -> String {
    frame_edit(files, instruction, "search/replace blocks, each after the path of its file on its own line (for example {path})")
}

/// The headings of an edit request; an answer that writes one is copying the request back.
const EDIT_PROMPT_HEADINGS: [&str; 2] = ["Project files:", "Change requested:"];

/// The files, the request, then the answer's format once more with a real path of the
/// project as its example (`{path}` in `format`): small models follow the end of the prompt
/// most closely, and copied the made-up path of a worked example.
fn frame_edit(files: &str, instruction: &str, format: &str) -> String {
    let Some(path) = files.lines().next().and_then(|l| l.rsplit_once(':')).map(|(p, _)| p) else {
        return format!("{} {instruction}", EDIT_PROMPT_HEADINGS[1]);
    };
    let [files_heading, request_heading] = EDIT_PROMPT_HEADINGS;
    format!("{files_heading}\n\n{files}{request_heading} {instruction}\n\nAnswer with {}.", format.replace("{path}", path))
}

/// Says in the report when the prompt leaves this machine, and that its counts are estimates.
fn note_destination(model: &Model, context: &mut PromptReport) {
    if let Some(host) = model.remote_host() {
        context.notes.push(format!(
            "Sent to the company inference server {host}: retrieval and prompt assembly ran on this machine, \
             and only this prompt left it. Token counts are estimates (the server's tokenizer is not here)."
        ));
    }
}

/// Answers `question` about the project from its index, streaming into `sink`, and adds the
/// turn to `conversation` (the caller saves it). The index should be up to date.
pub async fn ask(
    model: &Model,
    index: &ProjectIndex,
    conversation: &mut Conversation,
    question: &str,
    options: &RequestOptions,
    sink: &mut (dyn TokenSink + Send),
    cancel: &CancellationToken,
) -> Result<Turn> {
    let asked_at = now();
    let search = SearchOptions { limit: options.retrieve, ..SearchOptions::default() };
    let excerpts: Vec<Excerpt> = index
        .retrieve(question, &search)?
        .chunks
        .into_iter()
        .map(|c| Excerpt { path: c.path, start_line: c.start_line, end_line: c.end_line, score: c.score, text: c.text })
        .collect();
    let history = conversation.exchanges();
    let request =
        PromptRequest { system: ASK_SYSTEM_PROMPT, history: &history, excerpts: &excerpts, question, frame: frame_question };
    let (messages, mut context) = assemble(model, &request, options.window(model), options.max_tokens).await?;
    note_destination(model, &mut context);
    let params = GenerationParams { max_tokens: context.answer_tokens.min(options.max_tokens), temperature: options.temperature, json_schema: None };
    let generation = model.generate(&messages, &params, sink, cancel).await?;
    let known = index.paths()?;
    let turn = Turn {
        citations: citations::find(&generation.text, index.root(), &known),
        question: question.to_string(),
        sent: messages.last().map(|m| m.content.clone()),
        answer: generation.text,
        stop: generation.stop,
        model: model.name(),
        asked_at,
        context,
        usage: generation.usage,
    };
    conversation.push(turn.clone());
    Ok(turn)
}

/// Asks the model for the change `instruction` describes and turns its answer into a
/// proposal (the caller saves it; nothing is written to the project here). Files the
/// instruction names come first, then the files the index ranks highest; each is shown to the
/// model whole, and the proposal is made against exactly those bytes.
///
/// `history` holds earlier requests of the same task and the model's answers (a follow-up
/// such as "the tests failed: …"); the files are shown as they are now, after the message
/// history.
#[allow(clippy::too_many_arguments)]
pub async fn propose_edit(
    model: &Model,
    index: &ProjectIndex,
    history: &[Exchange],
    instruction: &str,
    format: Option<EditFormat>,
    options: &RequestOptions,
    sink: &mut (dyn TokenSink + Send),
    cancel: &CancellationToken,
) -> Result<Proposal> {
    let format = format.unwrap_or_else(|| model.parameter_count().map_or(EditFormat::SearchReplace, EditFormat::for_model));
    let root = index.root().to_path_buf();
    let known = index.paths()?;

    let mut candidates: Vec<(String, f32)> = Vec::new();
    for c in citations::find(instruction, &root, &known) {
        if let Some(p) = c.path.filter(|p| !candidates.iter().any(|(q, _)| q == p)) {
            candidates.push((p, f32::INFINITY));
        }
    }
    let search = SearchOptions { limit: options.retrieve, ..SearchOptions::default() };
    for f in index.retrieve(instruction, &search)?.files {
        if candidates.len() < options.retrieve.max(1) && !candidates.iter().any(|(q, _)| *q == f.path) {
            candidates.push((f.path, f.score));
        }
    }
    let mut seen: HashMap<String, Snapshot> = HashMap::new();
    let mut excerpts = Vec::new();
    for (path, score) in candidates {
        // A file that is not UTF-8 or no longer readable is not offered to the model.
        let Ok(Some(snap)) = Snapshot::read(&root, &path) else { continue };
        let lines = snap.file.text.lines().count().max(1);
        excerpts.push(Excerpt { path: path.clone(), start_line: 1, end_line: lines, score, text: snap.file.text.clone() });
        seen.insert(path, snap);
    }
    let request = PromptRequest {
        system: format.instructions(),
        history,
        excerpts: &excerpts,
        question: instruction,
        frame: match format {
            EditFormat::WholeFile => frame_whole_file_edit,
            EditFormat::SearchReplace => frame_search_replace_edit,
        },
    };
    let (messages, mut context) = assemble(model, &request, options.window(model), options.max_tokens).await?;
    note_destination(model, &mut context);
    // Only files that made it into the prompt count as "seen"; others are read when touched.
    seen.retain(|p, _| context.included.iter().any(|e| e.path == *p));

    let params = GenerationParams { max_tokens: context.answer_tokens.min(options.max_tokens), temperature: options.temperature, json_schema: None };
    let headings = excerpts.iter().filter(|e| seen.contains_key(&e.path)).map(Excerpt::heading).collect();
    let request_message = messages.last().map_or("", |m| m.content.as_str());
    let mut watch =
        RepeatWatch::new(format == EditFormat::WholeFile, &EDIT_PROMPT_HEADINGS).watching_copies_of(request_message, headings);
    let mut repeated = false;
    let mut guarded = |piece: &str| {
        let fresh = watch.push(piece);
        repeated |= !fresh;
        fresh && sink.token(piece)
    };
    let generation = model.generate(&messages, &params, &mut guarded, cancel).await?;
    let answer = EditAnswer {
        model: model.name(),
        text: generation.text,
        // Stopped by the watch: the rest would only have repeated itself or the request.
        stop: if repeated { StopReason::EndOfText } else { generation.stop },
        usage: generation.usage,
        context,
    };
    Ok(propose(&root, &known, instruction, format, answer, &seen, true))
}
