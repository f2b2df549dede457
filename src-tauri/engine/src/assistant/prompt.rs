//! Fitting a request into the model's context window, counted with the model's own tokenizer.
//!
//! What goes in, by priority: the system instructions and the question (always, or the
//! request fails with a clear error); room for the answer; the previous exchange (so a
//! follow-up makes sense); retrieved excerpts, most relevant first; older exchanges, newest
//! first. Whatever does not fit is dropped from the low end of each list — never cut
//! mid-way — and the report says what was dropped.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inference::{ChatMessage, Model};

/// Counts tokens the way the loaded model will. A trait so prompt assembly can be tested
/// without a model.
#[allow(async_fn_in_trait)]
pub trait TokenCounter {
    /// Tokens of `messages` once the chat template is applied, generation prompt included.
    async fn count_prompt(&self, messages: &[ChatMessage]) -> Result<usize>;
    /// Tokens of `text` alone.
    async fn count_text(&self, text: &str) -> Result<usize>;
}

impl TokenCounter for Model {
    async fn count_prompt(&self, messages: &[ChatMessage]) -> Result<usize> {
        self.count_prompt_tokens(messages).await
    }
    async fn count_text(&self, text: &str) -> Result<usize> {
        self.count_text_tokens(text).await
    }
}

/// Project text offered for the prompt: a retrieved chunk or a whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excerpt {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub score: f32,
    pub text: String,
}

impl Excerpt {
    /// How the excerpt appears in the prompt: headed by `path:start-end`, fenced.
    pub fn render(&self) -> String {
        let lang = self.path.rsplit_once('.').map_or("", |(_, ext)| ext);
        let fence = if self.text.contains("```") { "````" } else { "```" };
        let body = self.text.strip_suffix('\n').unwrap_or(&self.text);
        format!("{}:{}-{}\n{fence}{lang}\n{body}\n{fence}\n", self.path, self.start_line, self.end_line)
    }
}

/// An earlier question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub question: String,
    pub answer: String,
}

/// An excerpt as it was (or was not) put in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcerptUse {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub score: f32,
    pub tokens: usize,
}

/// What went into a prompt, for the UI's "context" panel and `--show-context`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptReport {
    pub context_window: usize,
    /// Tokens of the whole prompt as the model sees it.
    pub prompt_tokens: usize,
    /// Tokens left for the answer.
    pub answer_tokens: usize,
    /// Excerpts in the prompt, in the order they appear (most relevant first).
    pub included: Vec<ExcerptUse>,
    /// Retrieved excerpts left out because they did not fit.
    pub dropped: Vec<ExcerptUse>,
    pub exchanges_included: usize,
    pub exchanges_dropped: usize,
    /// What was left out, in words (empty when everything fit).
    pub notes: Vec<String>,
}

/// Everything a request could put in its prompt.
pub struct PromptRequest<'a> {
    pub system: &'a str,
    /// Earlier exchanges, oldest first.
    pub history: &'a [Exchange],
    /// Most relevant first.
    pub excerpts: &'a [Excerpt],
    pub question: &'a str,
    /// How the last user message frames the excerpts and the question.
    pub frame: fn(excerpts: &str, question: &str) -> String,
}

/// Room every excerpt or exchange costs beyond its own text (separators, role markers).
const EXCERPT_OVERHEAD: usize = 2;
const EXCHANGE_OVERHEAD: usize = 12;

/// Builds the messages for `request` within `window` tokens, leaving `answer_tokens` (or half
/// the window, if less) for the answer.
pub async fn assemble(
    counter: &impl TokenCounter,
    request: &PromptRequest<'_>,
    window: usize,
    answer_tokens: usize,
) -> Result<(Vec<ChatMessage>, PromptReport)> {
    let answer_tokens = answer_tokens.min(window / 2).max(1);
    let budget = window - answer_tokens;
    let base = counter.count_prompt(&messages(request, &[], &[])).await?;
    if base > budget {
        return Err(Error::PromptTooLong { needed: base, available: budget });
    }
    let mut excerpt_tokens = Vec::with_capacity(request.excerpts.len());
    for e in request.excerpts {
        excerpt_tokens.push(counter.count_text(&e.render()).await? + EXCERPT_OVERHEAD);
    }
    let mut exchange_tokens = Vec::with_capacity(request.history.len());
    for x in request.history {
        exchange_tokens.push(counter.count_text(&x.question).await? + counter.count_text(&x.answer).await? + EXCHANGE_OVERHEAD);
    }

    // Greedy by priority on estimated sizes…
    let mut used = base;
    let n_hist = request.history.len();
    let mut exchanges = 0; // the newest `exchanges` are in
    if n_hist > 0 && used + exchange_tokens[n_hist - 1] <= budget {
        used += exchange_tokens[n_hist - 1];
        exchanges = 1;
    }
    let mut excerpts = 0; // the first `excerpts` are in
    while excerpts < excerpt_tokens.len() && used + excerpt_tokens[excerpts] <= budget {
        used += excerpt_tokens[excerpts];
        excerpts += 1;
    }
    if exchanges == 1 {
        while exchanges < n_hist && used + exchange_tokens[n_hist - 1 - exchanges] <= budget {
            used += exchange_tokens[n_hist - 1 - exchanges];
            exchanges += 1;
        }
    }
    // …then checked with the real count, dropping from the low ends until it fits.
    let mut prompt_tokens;
    loop {
        let msgs = messages(request, &request.history[n_hist - exchanges..], &request.excerpts[..excerpts]);
        prompt_tokens = counter.count_prompt(&msgs).await?;
        if prompt_tokens <= budget {
            let report = report(request, window, prompt_tokens, window - prompt_tokens, excerpts, &excerpt_tokens, exchanges);
            return Ok((msgs, report));
        }
        if exchanges > 1 {
            exchanges -= 1;
        } else if excerpts > 0 {
            excerpts -= 1;
        } else if exchanges > 0 {
            exchanges -= 1;
        } else {
            return Err(Error::PromptTooLong { needed: prompt_tokens, available: budget });
        }
    }
}

fn messages(request: &PromptRequest, history: &[Exchange], excerpts: &[Excerpt]) -> Vec<ChatMessage> {
    let mut out = vec![ChatMessage::system(request.system)];
    for x in history {
        out.push(ChatMessage::user(&x.question));
        out.push(ChatMessage::assistant(&x.answer));
    }
    let rendered: String = excerpts.iter().map(|e| e.render() + "\n").collect();
    out.push(ChatMessage::user((request.frame)(&rendered, request.question)));
    out
}

fn report(
    request: &PromptRequest,
    window: usize,
    prompt_tokens: usize,
    answer_tokens: usize,
    excerpts: usize,
    excerpt_tokens: &[usize],
    exchanges: usize,
) -> PromptReport {
    let usage = |(e, t): (&Excerpt, &usize)| ExcerptUse {
        path: e.path.clone(),
        start_line: e.start_line,
        end_line: e.end_line,
        score: e.score,
        tokens: t - EXCERPT_OVERHEAD,
    };
    let pairs: Vec<_> = request.excerpts.iter().zip(excerpt_tokens).collect();
    let included: Vec<ExcerptUse> = pairs[..excerpts].iter().copied().map(usage).collect();
    let dropped: Vec<ExcerptUse> = pairs[excerpts..].iter().copied().map(usage).collect();
    let exchanges_dropped = request.history.len() - exchanges;
    let mut notes = Vec::new();
    if !dropped.is_empty() {
        notes.push(format!(
            "left out the {} least relevant of {} excerpts to fit the {window}-token context window",
            dropped.len(),
            request.excerpts.len()
        ));
    }
    if exchanges_dropped > 0 {
        notes.push(format!("left out the {exchanges_dropped} oldest of {} earlier exchanges", request.history.len()));
    }
    PromptReport {
        context_window: window,
        prompt_tokens,
        answer_tokens,
        included,
        dropped,
        exchanges_included: exchanges,
        exchanges_dropped,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, plus 3 per message for the template.
    struct Words;
    impl TokenCounter for Words {
        async fn count_prompt(&self, messages: &[ChatMessage]) -> Result<usize> {
            Ok(messages.iter().map(|m| m.content.split_whitespace().count() + 3).sum())
        }
        async fn count_text(&self, text: &str) -> Result<usize> {
            Ok(text.split_whitespace().count())
        }
    }

    fn excerpt(path: &str, words: usize) -> Excerpt {
        Excerpt { path: path.into(), start_line: 1, end_line: 3, score: 1.0, text: "w ".repeat(words) }
    }

    fn frame(excerpts: &str, question: &str) -> String {
        format!("{excerpts}\nQuestion: {question}")
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn everything_fits() {
        let ex = [excerpt("a.rs", 10), excerpt("b.rs", 10)];
        let hist = [Exchange { question: "q1".into(), answer: "a1".into() }];
        let req = PromptRequest { system: "sys", history: &hist, excerpts: &ex, question: "why?", frame };
        let (msgs, r) = block_on(assemble(&Words, &req, 1000, 100)).unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(r.included.len(), 2);
        assert!(r.notes.is_empty());
        assert!(msgs[3].content.contains("a.rs:1-3\n```rs\n"));
        assert_eq!(r.answer_tokens, 1000 - r.prompt_tokens);
    }

    #[test]
    fn least_relevant_excerpts_and_oldest_exchanges_go_first_and_are_reported() {
        let ex = [excerpt("a.rs", 40), excerpt("b.rs", 40), excerpt("c.rs", 5)];
        let hist: Vec<Exchange> =
            (0..3).map(|i| Exchange { question: format!("q{i} {}", "x ".repeat(20)), answer: "a".into() }).collect();
        let req = PromptRequest { system: "sys", history: &hist, excerpts: &ex, question: "why?", frame };
        let (msgs, r) = block_on(assemble(&Words, &req, 200, 100)).unwrap();
        // Budget 100: base ~13, newest exchange ~36, then a.rs (~44) fits, b.rs does not —
        // and c.rs is not taken past it, though it is small: relevance order is kept.
        assert_eq!(r.included.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["a.rs"]);
        assert_eq!(r.dropped.len(), 2);
        assert_eq!((r.exchanges_included, r.exchanges_dropped), (1, 2));
        assert!(msgs[1].content.starts_with("q2"), "the newest exchange is the one kept");
        assert_eq!(r.notes.len(), 2);
        assert!(r.prompt_tokens <= 100);
    }

    #[test]
    fn a_question_too_long_for_the_window_is_a_clear_error() {
        let q = "word ".repeat(300);
        let req = PromptRequest { system: "sys", history: &[], excerpts: &[], question: &q, frame };
        let e = block_on(assemble(&Words, &req, 256, 64)).unwrap_err();
        assert!(matches!(e, Error::PromptTooLong { .. }), "{e}");
    }
}
