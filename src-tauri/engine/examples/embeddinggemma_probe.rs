//! Can EmbeddingGemma-300m run here, and how fast? (issue: semantic retrieval; BENCHMARKS.md,
//! "EmbeddingGemma through mistral.rs"). Loads the sentence-transformers folder with
//! mistral.rs's embedding pipeline on the CPU, checks that a code query is nearer the code that
//! answers it than to unrelated text, and times 16 chunks of this crate's own source.
//!   scripts/fetch-models.sh --embed-gemma
//!   cargo run --release --example embeddinggemma_probe -- models/local/embeddinggemma-300m [f32|f16|bf16]

use std::time::Instant;

use mistralrs::{EmbeddingModelBuilder, EmbeddingRequest, ModelDType};

/// Characters of each timed chunk: about 128 Gemma tokens of Rust.
const CHUNK_CHARS: usize = 480;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perimeter_engine::paths::keep_model_hub_offline();
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or_else(|| anyhow::anyhow!("usage: embeddinggemma_probe FOLDER [f32|f16|bf16]"))?;
    let dtype = match args.next().as_deref() {
        None | Some("f32") => ModelDType::F32,
        Some("f16") => ModelDType::F16,
        Some("bf16") => ModelDType::BF16,
        Some(other) => anyhow::bail!("unknown dtype {other}"),
    };
    let started = Instant::now();
    let model = EmbeddingModelBuilder::new(&dir).with_force_cpu().with_dtype(dtype).build().await?;
    println!("loaded in {:.1} s ({dtype:?})", started.elapsed().as_secs_f64());

    // The model's own prompts for retrieval (config_sentence_transformers.json).
    let query = "task: code retrieval | query: the pager is not used when output is piped";
    let docs = [
        "title: src/output.rs | text: fn pager(&self) -> Option<Child> { if !atty::is(Stream::Stdout) { return None; } \
         let pager = env::var(\"PAGER\").unwrap_or(\"less\".into()); Command::new(pager).stdin(Stdio::piped()).spawn().ok() }",
        "title: src/syntax.rs | text: pub fn highlight(line: &str, theme: &Theme) -> Vec<(Style, &str)> { \
         let mut h = HighlightLines::new(syntax, theme); h.highlight_line(line, &SYNTAX_SET) }",
        "title: README.md | text: bat supports syntax highlighting for a large number of programming and markup languages",
    ];
    let request = docs.iter().fold(EmbeddingRequest::builder().add_prompt(query), |r, d| r.add_prompt(*d));
    let vectors = model.generate_embeddings(request).await?;
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let scores: Vec<f32> = vectors[1..].iter().map(|d| cosine(&vectors[0], d)).collect();
    println!("{} dims; cosine of the query to the pager code, highlighting code, README: {scores:.3?}", vectors[0].len());
    let sensible = scores.iter().all(|s| s.is_finite()) && scores[0] > scores[1] && scores[0] > scores[2];
    println!("{}", if sensible { "ranking: sensible" } else { "ranking: NOT sensible (NaN or wrong order)" });

    let chunks: Vec<String> = rust_files(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")))
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| text.chars().take(CHUNK_CHARS).collect())
        .take(CHUNKS)
        .collect();
    let prompts: Vec<String> = chunks.iter().map(|c| format!("title: none | text: {c}")).collect();
    let started = Instant::now();
    model.generate_embeddings(EmbeddingRequest::builder().add_prompts(prompts)).await?;
    let gemma = chunks.len() as f64 / started.elapsed().as_secs_f64();
    println!("EmbeddingGemma: {} chunks of {CHUNK_CHARS} characters, {gemma:.2} chunks/s", chunks.len());

    // The peer in the same run: the app's embedder (all-MiniLM-L6-v2 on candle, 128 tokens).
    let minilm = std::path::Path::new(&dir).with_file_name("all-minilm-l6-v2");
    if minilm.is_dir() {
        let embedder = perimeter_engine::embed::Embedder::load(&minilm)?;
        let texts: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let started = Instant::now();
        for batch in texts.chunks(8) {
            embedder.embed_documents(batch)?;
        }
        let peer = chunks.len() as f64 / started.elapsed().as_secs_f64();
        println!("all-MiniLM-L6-v2 (peer): {peer:.2} chunks/s; EmbeddingGemma takes {:.1}x as long", peer / gemma);
    }
    Ok(())
}

/// Timed chunks: the start of this many source files.
const CHUNKS: usize = 16;

/// The `.rs` files under `dir`, sorted, so every run times the same text.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
