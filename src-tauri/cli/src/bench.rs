//! `perimeter bench inference`: load time, time to first token, prompt and decode speed,
//! peak memory. Medians over several runs; the prompt is real code, sized with the model's
//! own tokenizer, and can be saved so a peer engine runs exactly the same text.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use perimeter_engine::inference::{
    cpu_threads, CancellationToken, ChatMessage, ComputeDtype, GenerationParams, LoadOptions, LocalModel,
};
use serde_json::json;

use crate::load::load_model;

/// Real source code (a Rust module), the kind of text a grounded question carries.
const PROMPT_SOURCE: &str = include_str!("../../../tests/fixtures/bench/code.txt");
const INSTRUCTION: &str = "Explain what the following code does, then suggest one improvement.\n\n";

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Inference speed of a model on this machine.
    Inference(InferenceArgs),
    /// Retrieval quality: ranks files for every case of a retrieval development set
    /// (`queries.jsonl` from shared/retrieval-dev's materialize.py) and writes a run file
    /// for its score.py.
    Retrieval(RetrievalArgs),
    /// Index speed on a folder, search latency, and time from a save to searchable, beside
    /// ripgrep answering the same queries on the same tree.
    Index(IndexBenchArgs),
    /// Does it solve coding tasks? Exercism-layout exercises (Aider's polyglot benchmark):
    /// edit, run the hidden tests, retry once with their output; Aider in the same run as the
    /// peer (`--assistants perimeter,aider`).
    Edits(crate::bench_edits::EditsArgs),
}

#[derive(Args)]
pub struct IndexBenchArgs {
    /// The folder to index (e.g. ~/.cargo/registry/src).
    dir: PathBuf,
    /// Queries, one per line (default: a built-in list of identifiers and phrases).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Also time search by meaning with this embedding model's folder (see --embed-sample).
    #[arg(long)]
    embedder: Option<PathBuf>,
    /// Chunks embedded for real with --embedder (the throughput figure); the others get
    /// copies of their vectors, so that search works on the whole tree's worth of vectors.
    #[arg(long, default_value_t = 2000)]
    embed_sample: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RetrievalArgs {
    /// queries.jsonl: one {"id", "dir", "query"} per line.
    queries: PathBuf,
    /// The run file to write: one {"id", "ranked_files"} per line.
    #[arg(long)]
    out: PathBuf,
    /// Files ranked per case.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// lexical, semantic or hybrid (the last two need --embedder).
    #[arg(long, default_value = "lexical")]
    mode: perimeter_engine::index::SearchMode,
    /// The embedding model's folder (sentence-transformers layout).
    #[arg(long)]
    embedder: Option<PathBuf>,
    /// Where chunk vectors are kept between cases and runs (the trees of one repository
    /// share most chunks, so each is embedded once). Default: a folder removed at the end.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Tokens of each chunk the embedding model reads (default: what it was trained on).
    #[arg(long)]
    embed_tokens: Option<usize>,
    /// Also write each case's lexical file ranking with its scores (and the semantic one, with --embedder).
    #[arg(long)]
    rankings: bool,
    /// Only the first N cases.
    #[arg(long)]
    cases: Option<usize>,
}

#[derive(Args)]
pub struct InferenceArgs {
    /// An installed model's name, or the path of a .gguf file.
    #[arg(long)]
    model: Option<String>,
    /// Approximate prompt length in tokens (after the chat template).
    #[arg(long, default_value_t = 1000)]
    prompt_tokens: usize,
    /// Tokens to decode per run (end-of-text is ignored so every run decodes this many).
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Precision of activations: auto, f32, f16, bf16.
    #[arg(long, default_value = "auto")]
    dtype: ComputeDtype,
    /// Write the prompt exactly as the model sees it (chat template applied) to this file,
    /// for a peer engine to run the same tokens.
    #[arg(long)]
    save_prompt: Option<PathBuf>,
    /// Write what a follow-up question adds after the first answer (chat template applied),
    /// for a peer engine to continue its own conversation the same way.
    #[arg(long)]
    save_follow_up: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Inference(args) => inference(args).await,
        BenchCommand::Retrieval(args) => retrieval(args),
        BenchCommand::Index(args) => index_speed(args),
        BenchCommand::Edits(args) => crate::bench_edits::run(args).await,
    }
}

fn retrieval(args: RetrievalArgs) -> anyhow::Result<ExitCode> {
    use perimeter_engine::embed::{Embedder, VectorStore};
    use perimeter_engine::index::{ProjectIndex, SearchMode, SearchOptions};
    use std::io::{BufRead, Write};
    let input = std::fs::File::open(&args.queries).map_err(|e| anyhow::anyhow!("{}: {e}", args.queries.display()))?;
    let mut out = std::fs::File::create(&args.out).map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let scratch = tempfile_dir()?;
    let embedder = match (args.mode, &args.embedder) {
        (SearchMode::Lexical, _) => None,
        (_, Some(dir)) => {
            let e = Embedder::load(dir)?;
            Some(match args.embed_tokens {
                Some(n) => e.with_max_tokens(n)?,
                None => e,
            })
        }
        (_, None) => anyhow::bail!("--mode {:?} needs --embedder DIR", args.mode),
    };
    let mut store = match &embedder {
        Some(e) => Some(VectorStore::open(args.vectors.as_deref().unwrap_or(&scratch.join("vectors")), &e.id(), e.dims())?),
        None => None,
    };
    let (mut index_s, mut embed_s, mut search_s, mut cases, mut embedded) = (0.0, 0.0, 0.0, 0usize, 0usize);
    for line in std::io::BufReader::new(input).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if args.cases.is_some_and(|n| cases >= n) {
            break;
        }
        let case: serde_json::Value = serde_json::from_str(&line)?;
        let (id, dir, query) = (case["id"].as_str().unwrap_or_default(), case["dir"].as_str().unwrap_or_default(), case["query"].as_str().unwrap_or_default());
        // A fresh index per case: the trees of one repository are the same project at other dates.
        let index_dir = scratch.join(format!("case-{cases}"));
        let t = std::time::Instant::now();
        let index = ProjectIndex::open(std::path::Path::new(dir), &index_dir)?;
        index.update(&mut |_| {}, &CancellationToken::new())?;
        index_s += t.elapsed().as_secs_f64();
        let semantic = match (&embedder, &mut store) {
            (Some(e), Some(store)) => {
                let t = std::time::Instant::now();
                embedded += index.embed_chunks(e, store, &mut |_| {}, &CancellationToken::new())?.chunks_embedded;
                embed_s += t.elapsed().as_secs_f64();
                Some(index.semantic_table(store)?)
            }
            _ => None,
        };
        let t = std::time::Instant::now();
        let options = SearchOptions { limit: args.limit, ..SearchOptions::default() };
        let query_vector = match (&embedder, &semantic) {
            (Some(e), Some(_)) => Some(e.embed_query(query)?),
            _ => None,
        };
        let results = match (&semantic, &query_vector) {
            (Some(table), Some(q)) => index.search_by(query, &options, args.mode, Some((table, q)))?,
            _ => index.search(query, &options)?,
        };
        search_s += t.elapsed().as_secs_f64();
        let ranked: Vec<&str> = results.files.iter().map(|f| f.path.as_str()).collect();
        let mut line = json!({ "id": id, "ranked_files": ranked });
        if args.rankings {
            // The rankings with their scores, to study fusion and priors offline.
            let scored = |files: &[perimeter_engine::index::FileHit]| -> Vec<(String, f32)> {
                files.iter().map(|f| (f.path.clone(), f.score)).collect()
            };
            line["lexical"] = json!(scored(&index.search(query, &options)?.files));
            if let (Some(table), Some(q)) = (&semantic, &query_vector) {
                line["semantic"] = json!(scored(&table.search(q, &options).files));
            }
        }
        writeln!(out, "{line}")?;
        drop(index);
        let _ = std::fs::remove_dir_all(&index_dir);
        cases += 1;
        eprint!("\r{cases} cases, {embedded} chunks embedded in {embed_s:.0} s");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!();
    eprintln!(
        "{cases} cases: indexing {index_s:.1} s, embedding {embedded} chunks in {embed_s:.1} s ({:.1} chunks/s), searching {search_s:.2} s ({:.1} ms a query)",
        embedded as f64 / embed_s.max(1e-9),
        search_s * 1000.0 / cases.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

const DEFAULT_QUERIES: &str = include_str!("../../../tests/fixtures/bench/queries.txt");

fn index_speed(args: IndexBenchArgs) -> anyhow::Result<ExitCode> {
    use perimeter_engine::index::{ProjectIndex, SearchOptions};
    use std::time::{Duration, Instant};
    let queries: Vec<String> = match &args.queries {
        Some(p) => std::fs::read_to_string(p)?,
        None => DEFAULT_QUERIES.to_string(),
    }
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty())
    .map(String::from)
    .collect();
    let scratch = tempfile_dir()?;
    let index_dir = scratch.join("index");

    let t = Instant::now();
    let index = std::sync::Arc::new(ProjectIndex::open(&args.dir, &index_dir)?);
    let s = index.update(&mut |_| {}, &CancellationToken::new())?;
    let index_s = t.elapsed().as_secs_f64();
    let rss = peak_rss_bytes();

    let percentile = crate::bench_semantic::percentile;
    let mut ours = Vec::new();
    for q in &queries {
        let t = Instant::now();
        index.search(q, &SearchOptions::default())?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // ripgrep, same queries: the query's words as alternatives, files listed, as a user would grep.
    let mut rg = Vec::new();
    for q in &queries {
        let words: Vec<String> = q.split_whitespace().map(|w| regex_escape(w)).collect();
        let t = Instant::now();
        let out = std::process::Command::new("rg")
            .args(["-l", "-i", "-e", &words.join("|")])
            .arg(&args.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if out.is_err() {
            anyhow::bail!("ripgrep (rg) is not installed; it is the peer of this benchmark");
        }
        rg.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let semantic = match &args.embedder {
        Some(dir) => Some(crate::bench_semantic::semantic_at_scale(&index, dir, args.embed_sample, &queries)?),
        None => None,
    };

    // Save to searchable, through the watcher.
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = perimeter_engine::index::watch::watch(index.clone(), move |_, _| {
        let _ = tx.send(());
    })?;
    let probe = args.dir.join(format!("perimeter_bench_probe_{}.rs", std::process::id()));
    let token = format!("zqxprobe{}", std::process::id());
    let mut save_ms = None;
    let t = Instant::now();
    std::fs::write(&probe, format!("pub fn {token}() {{}}\n"))?;
    while t.elapsed() < Duration::from_secs(10) {
        let _ = rx.recv_timeout(Duration::from_millis(20));
        if !index.search(&token, &SearchOptions::default())?.files.is_empty() {
            save_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
            break;
        }
    }
    let _ = std::fs::remove_file(&probe);
    drop(watcher);
    drop(index);
    let _ = std::fs::remove_dir_all(&scratch);

    let mb = s.bytes_indexed as f64 / 1e6;
    let result = json!({
        "dir": args.dir,
        "files_indexed": s.files_indexed,
        "chunks": s.chunks_indexed,
        "mb_indexed": mb,
        "skipped": s.skipped.total(),
        "index_s": index_s,
        "files_per_s": s.files_indexed as f64 / index_s,
        "mb_per_s": mb / index_s,
        "peak_rss_bytes": rss,
        "queries": queries.len(),
        "search_p50_ms": percentile(&mut ours, 0.5),
        "search_p99_ms": percentile(&mut ours, 0.99),
        "rg_p50_ms": percentile(&mut rg, 0.5),
        "rg_p99_ms": percentile(&mut rg, 0.99),
        "save_to_searchable_ms": save_ms,
        "semantic": semantic,
    });
    if args.json {
        println!("{result}");
    } else {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn regex_escape(w: &str) -> String {
    w.chars().map(|c| if c.is_alphanumeric() || c == '_' { c.to_string() } else { format!("\\{c}") }).collect()
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("perimeter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn inference(args: InferenceArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions { dtype: args.dtype, ignore_eos: true, no_prefix_cache: true, ..LoadOptions::default() };
    let model = load_model(args.model.as_deref(), &options, !args.json).await?;
    let load_s = model.load_time.as_secs_f64();

    let user = sized_prompt(&model, args.prompt_tokens).await?;
    let messages = [ChatMessage::user(&user)];
    if let Some(path) = &args.save_prompt {
        let rendered = model.render_prompt(&messages).await?;
        std::fs::write(path, rendered).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    let prompt_tokens = model.count_prompt_tokens(&messages).await?;
    let cancel = CancellationToken::new();
    let mut discard = |_: &str| true;

    // Warm-up: first-touch page faults and thread-pool start-up are not what we measure.
    let warm = GenerationParams { max_tokens: 4, temperature: None, json_schema: None };
    model.generate(&[ChatMessage::user("Hello")], &warm, &mut discard, &cancel).await?;

    let params = GenerationParams { max_tokens: args.decode_tokens, temperature: None, json_schema: None };
    let (mut ttft, mut prompt_rate, mut decode_rate) = (vec![], vec![], vec![]);
    for _ in 0..args.runs.max(1) {
        let g = model.generate(&messages, &params, &mut discard, &cancel).await?;
        ttft.extend(g.usage.time_to_first_token_ms);
        // Measured as a client sees it (prompt tokens over the wait for the first token), the
        // same way the peer engine is measured.
        prompt_rate.extend(g.usage.time_to_first_token_ms.map(|ms| prompt_tokens as f64 / (ms / 1000.0)));
        decode_rate.extend(g.usage.decode_tokens_per_s);
    }
    let peak_rss = peak_rss_bytes();
    let (path, quantization, backend) = (model.path.clone(), model.info.quantization.clone(), model.backend.clone());
    let (layers, note) = (model.layers, model.placement_note.clone());
    drop(model);
    let mut follow_up = follow_up(&args, &user, !args.json).await?;
    let result = json!({
        "engine": "mistral.rs 0.8.1 (in-process)",
        "model": path,
        "backend": backend,
        "layers": layers.of,
        "layers_on_gpu": layers.on_gpu,
        "quantization": quantization,
        "dtype": args.dtype,
        "threads": cpu_threads(),
        "cpu_kernels": perimeter_engine::inference::cpu_kernels(),
        "runs": args.runs,
        "load_s": load_s,
        "prompt_tokens": prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "time_to_first_token_ms": median(&mut ttft),
        "prompt_tokens_per_s": median(&mut prompt_rate),
        "decode_tokens_per_s": median(&mut decode_rate),
        "peak_rss_bytes": peak_rss,
        "follow_up_tokens": follow_up.tokens,
        "follow_up_new_tokens": follow_up.new_tokens,
        "follow_up_time_to_first_token_ms": median(&mut follow_up.ttft),
    });
    if args.json {
        println!("{result}");
    } else {
        let f = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
        println!("model              {}", path.display());
        println!("runs on            {backend}");
        if let Some(note) = &note {
            println!("note               {note}");
        }
        println!("threads / dtype    {} / {:?}", cpu_threads(), args.dtype);
        println!("load               {:.2} s", load_s);
        println!("prompt             {prompt_tokens} tokens");
        println!("time to 1st token  {:.0} ms", f("time_to_first_token_ms"));
        println!("prompt speed       {:.1} tok/s", f("prompt_tokens_per_s"));
        println!("decode speed       {:.1} tok/s ({} tokens)", f("decode_tokens_per_s"), args.decode_tokens);
        println!(
            "follow-up 1st token {:.0} ms ({} tokens, {} new since the first answer)",
            f("follow_up_time_to_first_token_ms"),
            follow_up.tokens,
            follow_up.new_tokens
        );
        if let Some(b) = peak_rss {
            println!("peak RSS           {:.0} MiB", b as f64 / (1u64 << 20) as f64);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Follow-up questions of the conversation benchmark, one per run.
const FOLLOW_UPS: [&str; 5] = [
    "Which function in that code would you test first, and why?",
    "Is there any error handling missing in it?",
    "Summarise the code above in two sentences.",
    "What would you rename in it?",
    "Where could it panic?",
];

struct FollowUp {
    /// Prompt tokens of the follow-up: the first question, its answer and the new question.
    tokens: usize,
    /// Of those, the tokens after the first answer.
    new_tokens: usize,
    ttft: Vec<f64>,
}

/// Time to first token of a follow-up question in the same conversation, with prefix reuse on
/// as in the app: the first question and its answer are computed once, then each run asks
/// another follow-up (the engine should compute only what follows the first answer).
async fn follow_up(args: &InferenceArgs, first: &str, progress: bool) -> anyhow::Result<FollowUp> {
    // A real conversation: the answer ends where the model ends it.
    let options = LoadOptions { dtype: args.dtype, ..LoadOptions::default() };
    let model = load_model(args.model.as_deref(), &options, progress).await?;
    let cancel = CancellationToken::new();
    let mut discard = |_: &str| true;
    let params = GenerationParams { max_tokens: args.decode_tokens, temperature: None, json_schema: None };
    let g = model.generate(&[ChatMessage::user(first)], &params, &mut discard, &cancel).await?;
    let earlier = g.usage.prompt_tokens.unwrap_or_default() + g.usage.completion_tokens;
    let answer = g.text;
    let conversation = |question: &str| {
        [ChatMessage::user(first), ChatMessage::assistant(&answer), ChatMessage::user(question)]
    };
    let tokens = model.count_prompt_tokens(&conversation(FOLLOW_UPS[0])).await?;
    if let Some(path) = &args.save_follow_up {
        let rendered = model.render_prompt(&conversation(FOLLOW_UPS[0])).await?;
        let after_answer = rendered.rsplit_once(answer.as_str()).map_or(rendered.as_str(), |(_, tail)| tail);
        std::fs::write(path, after_answer).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    let short = GenerationParams { max_tokens: 8, temperature: None, json_schema: None };
    let mut ttft = Vec::new();
    for question in FOLLOW_UPS.iter().cycle().take(args.runs.max(1)) {
        let g = model.generate(&conversation(question), &short, &mut discard, &cancel).await?;
        ttft.extend(g.usage.time_to_first_token_ms);
    }
    Ok(FollowUp { tokens, new_tokens: tokens.saturating_sub(earlier), ttft })
}

/// The instruction plus as many whole lines of `PROMPT_SOURCE` as keep the templated prompt
/// at or under `target` tokens, counted by the model's tokenizer.
async fn sized_prompt(model: &LocalModel, target: usize) -> anyhow::Result<String> {
    let lines: Vec<&str> = PROMPT_SOURCE.lines().collect();
    let text = |n: usize| format!("{INSTRUCTION}{}", lines[..n].join("\n"));
    let count = |n: usize| {
        let t = text(n);
        async move { model.count_prompt_tokens(&[ChatMessage::user(t)]).await }
    };
    if count(lines.len()).await? <= target {
        anyhow::bail!("the benchmark text has fewer than {target} tokens; ask for a shorter prompt");
    }
    let (mut lo, mut hi) = (0, lines.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if count(mid).await? <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(text(lo))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// The process's peak resident memory (Linux: VmHWM).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// The process's resident memory now (Linux: VmRSS).
pub(crate) fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
