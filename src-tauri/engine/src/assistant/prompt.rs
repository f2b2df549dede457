//! Fitting a request into the model's context window, counted with the model's own tokenizer.
//!
//! What goes in, by priority: the system instructions and the question (always, or the
//! request fails with a clear error); room for the answer; the previous exchange (so a
//! follow-up makes sense); retrieved excerpts, most relevant first; older exchanges, newest
//! first. Whatever does not fit is dropped from the low end of each list — never cut
//! mid-way — and the report says what was dropped.

pub use crate::context::{Excerpt, ExcerptUse, Exchange, PromptReport};
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

/// Everything a request could put in its prompt.
pub struct PromptRequest<'a> {
    /// The system message, kept byte-stable so its computed prefix is reused.
    pub system: &'a str,
    /// Earlier exchanges, oldest first.
    pub history: &'a [Exchange],
    /// Most relevant first.
    pub excerpts: &'a [Excerpt],
    /// The user's question or change request.
    pub question: &'a str,
    /// How the last user message frames the excerpts and the question.
    pub frame: fn(excerpts: &str, question: &str) -> String,
}

/// Room every excerpt or exchange costs beyond its own text (separators, role markers).
const EXCERPT_OVERHEAD: usize = 2;
const EXCHANGE_OVERHEAD: usize = 12;

/// Builds the messages for `request` within `window` tokens, leaving `answer_tokens` (or half
/// the window, if less) for the answer.
///
/// Earlier turns go in verbatim (as they were sent, excerpts included) while they take at most
/// half of the room the question leaves: the prompt then extends the previous one, which the
/// engine has already computed, and excerpts those turns show are not repeated. Past that
/// share they go in as bare questions and answers, newest first, as room allows.
pub async fn assemble(
    counter: &impl TokenCounter,
    request: &PromptRequest<'_>,
    window: usize,
    answer_tokens: usize,
) -> Result<(Vec<ChatMessage>, PromptReport)> {
    let answer_tokens = answer_tokens.min(window / 2).max(1);
    let fit = Fit { window, budget: window - answer_tokens };
    let base = counter.count_prompt(&messages(request, &[], false, &[])).await?;
    if base > fit.budget {
        return Err(Error::PromptTooLong { needed: base, available: fit.budget });
    }
    let mut excerpt_tokens = Vec::with_capacity(request.excerpts.len());
    for e in request.excerpts {
        excerpt_tokens.push(counter.count_text(&e.render()).await? + EXCERPT_OVERHEAD);
    }
    if let Some(fitted) = assemble_verbatim(counter, request, &fit, base, &excerpt_tokens).await? {
        return Ok(fitted);
    }
    assemble_bare(counter, request, &fit, base, &excerpt_tokens).await
}

struct Fit {
    window: usize,
    /// Tokens the prompt may take (the window less the room kept for the answer).
    budget: usize,
}

/// Every earlier turn verbatim, then excerpts they do not already show; `None` when a turn's
/// sent message is unknown (older conversation files) or the turns take too much room.
async fn assemble_verbatim(
    counter: &impl TokenCounter,
    request: &PromptRequest<'_>,
    fit: &Fit,
    base: usize,
    excerpt_tokens: &[usize],
) -> Result<Option<(Vec<ChatMessage>, PromptReport)>> {
    let history = request.history;
    if history.is_empty() || history.iter().any(|x| x.sent.is_none()) {
        return Ok(None);
    }
    let mut used = base;
    for x in history {
        let sent = x.sent.as_deref().unwrap_or_default();
        used += counter.count_text(sent).await? + counter.count_text(&x.answer).await? + EXCHANGE_OVERHEAD;
    }
    if used - base > (fit.budget - base) / 2 {
        return Ok(None);
    }
    let shown = |e: &Excerpt| {
        let rendered = e.render();
        history.iter().any(|x| x.sent.as_deref().is_some_and(|s| s.contains(&rendered)))
    };
    let (already, fresh): (Vec<usize>, Vec<usize>) = (0..request.excerpts.len()).partition(|&i| shown(&request.excerpts[i]));
    let mut take = 0;
    while take < fresh.len() && used + excerpt_tokens[fresh[take]] <= fit.budget {
        used += excerpt_tokens[fresh[take]];
        take += 1;
    }
    loop {
        let chosen: Vec<&Excerpt> = fresh[..take].iter().map(|&i| &request.excerpts[i]).collect();
        let msgs = messages(request, history, true, &chosen);
        let prompt_tokens = counter.count_prompt(&msgs).await?;
        if prompt_tokens <= fit.budget {
            let shape = Shape { included: &fresh[..take], already_shown: &already, exchanges: history.len(), verbatim: true };
            return Ok(Some((msgs, report(request, fit, prompt_tokens, excerpt_tokens, &shape))));
        }
        if take == 0 {
            return Ok(None);
        }
        take -= 1;
    }
}

/// Excerpts by relevance and earlier turns as bare questions and answers, each list cut from
/// its low end until the prompt fits.
async fn assemble_bare(
    counter: &impl TokenCounter,
    request: &PromptRequest<'_>,
    fit: &Fit,
    base: usize,
    excerpt_tokens: &[usize],
) -> Result<(Vec<ChatMessage>, PromptReport)> {
    let mut exchange_tokens = Vec::with_capacity(request.history.len());
    for x in request.history {
        exchange_tokens.push(counter.count_text(&x.question).await? + counter.count_text(&x.answer).await? + EXCHANGE_OVERHEAD);
    }

    // Greedy by priority on estimated sizes…
    let budget = fit.budget;
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
    let order: Vec<usize> = (0..request.excerpts.len()).collect();
    loop {
        let chosen: Vec<&Excerpt> = request.excerpts[..excerpts].iter().collect();
        let msgs = messages(request, &request.history[n_hist - exchanges..], false, &chosen);
        let prompt_tokens = counter.count_prompt(&msgs).await?;
        if prompt_tokens <= budget {
            let shape = Shape { included: &order[..excerpts], already_shown: &[], exchanges, verbatim: false };
            return Ok((msgs, report(request, fit, prompt_tokens, excerpt_tokens, &shape)));
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

fn messages(request: &PromptRequest, history: &[Exchange], verbatim: bool, excerpts: &[&Excerpt]) -> Vec<ChatMessage> {
    let mut out = vec![ChatMessage::system(request.system)];
    for x in history {
        let sent = if verbatim { x.sent.as_deref() } else { None };
        out.push(ChatMessage::user(sent.unwrap_or(&x.question)));
        out.push(ChatMessage::assistant(&x.answer));
    }
    let rendered: String = excerpts.iter().map(|e| e.render() + "\n").collect();
    out.push(ChatMessage::user((request.frame)(&rendered, request.question)));
    out
}

/// Which excerpts (indices into the request's, in prompt order) and how many of the newest
/// earlier turns a prompt holds.
struct Shape<'a> {
    included: &'a [usize],
    already_shown: &'a [usize],
    exchanges: usize,
    verbatim: bool,
}

fn report(request: &PromptRequest, fit: &Fit, prompt_tokens: usize, excerpt_tokens: &[usize], shape: &Shape) -> PromptReport {
    let usage = |&i: &usize| {
        let e = &request.excerpts[i];
        ExcerptUse {
            path: e.path.clone(),
            start_line: e.start_line,
            end_line: e.end_line,
            score: e.score,
            tokens: excerpt_tokens[i] - EXCERPT_OVERHEAD,
        }
    };
    let left_out: Vec<usize> = (0..request.excerpts.len())
        .filter(|i| !shape.included.contains(i) && !shape.already_shown.contains(i))
        .collect();
    let dropped: Vec<ExcerptUse> = left_out.iter().map(usage).collect();
    let exchanges_dropped = request.history.len() - shape.exchanges;
    let mut notes = Vec::new();
    if !dropped.is_empty() {
        notes.push(format!(
            "left out the {} least relevant of {} excerpts to fit the {}-token context window",
            dropped.len(),
            request.excerpts.len(),
            fit.window
        ));
    }
    if !shape.already_shown.is_empty() {
        notes.push(format!(
            "{} of the excerpts found are already in the conversation above and were not repeated",
            shape.already_shown.len()
        ));
    }
    if exchanges_dropped > 0 {
        notes.push(format!("left out the {exchanges_dropped} oldest of {} earlier exchanges", request.history.len()));
    }
    PromptReport {
        context_window: fit.window,
        prompt_tokens,
        answer_tokens: fit.window - prompt_tokens,
        included: shape.included.iter().map(usage).collect(),
        dropped,
        exchanges_included: shape.exchanges,
        exchanges_dropped,
        earlier_turns_verbatim: shape.verbatim,
        already_shown: shape.already_shown.iter().map(usage).collect(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_file_ranked_infinite_survives_a_round_trip_through_json() {
        let used = ExcerptUse { path: "a.rs".into(), start_line: 1, end_line: 2, score: f32::INFINITY, tokens: 3 };
        let json = serde_json::to_string(&used).unwrap();
        assert!(json.contains("\"score\":null"), "{json}");
        assert_eq!(serde_json::from_str::<ExcerptUse>(&json).unwrap(), used);
    }

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
        let hist = [Exchange { question: "q1".into(), sent: None, answer: "a1".into() }];
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
            (0..3).map(|i| Exchange { question: format!("q{i} {}", "x ".repeat(20)), sent: None, answer: "a".into() }).collect();
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
    fn a_follow_up_extends_the_previous_prompt_and_does_not_repeat_its_excerpts() {
        let first = [excerpt("a.rs", 10), excerpt("b.rs", 10)];
        let req = PromptRequest { system: "sys", history: &[], excerpts: &first, question: "why?", frame };
        let (msgs1, _) = block_on(assemble(&Words, &req, 1000, 100)).unwrap();
        let sent = msgs1.last().unwrap().content.clone();
        let hist = [Exchange { question: "why?".into(), sent: Some(sent.clone()), answer: "because".into() }];
        // The follow-up finds b.rs again and c.rs anew.
        let second = [excerpt("c.rs", 10), excerpt("b.rs", 10)];
        let req = PromptRequest { system: "sys", history: &hist, excerpts: &second, question: "and then?", frame };
        let (msgs2, r) = block_on(assemble(&Words, &req, 1000, 100)).unwrap();
        assert!(r.earlier_turns_verbatim);
        assert_eq!(msgs2[..2], msgs1[..2], "the previous prompt is a prefix of this one");
        assert_eq!(msgs2[2].content, "because");
        assert!(msgs2[3].content.contains("c.rs:1-3") && !msgs2[3].content.contains("b.rs"), "{}", msgs2[3].content);
        assert_eq!(r.included.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["c.rs"]);
        assert_eq!(r.already_shown.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["b.rs"]);
        assert!(r.dropped.is_empty());
        assert_eq!(r.exchanges_included, 1);
    }

    #[test]
    fn earlier_turns_too_big_to_repeat_go_in_as_bare_questions_and_answers() {
        let big = format!("{}\nQuestion: q1", "w ".repeat(300));
        let hist = [Exchange { question: "q1".into(), sent: Some(big), answer: "a1".into() }];
        let ex = [excerpt("a.rs", 10)];
        let req = PromptRequest { system: "sys", history: &hist, excerpts: &ex, question: "why?", frame };
        let (msgs, r) = block_on(assemble(&Words, &req, 600, 100)).unwrap();
        assert!(!r.earlier_turns_verbatim);
        assert_eq!(msgs[1].content, "q1");
        assert_eq!(r.included.len(), 1);
        // Conversations saved before the sent message was kept fall back the same way.
        let old = [Exchange { question: "q1".into(), sent: None, answer: "a1".into() }];
        let req = PromptRequest { system: "sys", history: &old, excerpts: &ex, question: "why?", frame };
        let (msgs, r) = block_on(assemble(&Words, &req, 600, 100)).unwrap();
        assert!(!r.earlier_turns_verbatim);
        assert_eq!(msgs[1].content, "q1");
    }

    #[test]
    fn a_question_too_long_for_the_window_is_a_clear_error() {
        let q = "word ".repeat(300);
        let req = PromptRequest { system: "sys", history: &[], excerpts: &[], question: &q, frame };
        let e = block_on(assemble(&Words, &req, 256, 64)).unwrap_err();
        assert!(matches!(e, Error::PromptTooLong { .. }), "{e}");
    }
}
