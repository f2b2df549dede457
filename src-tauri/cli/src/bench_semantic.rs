//! `perimeter bench index --embedder`: search by meaning on a large tree — embedding
//! throughput, opening the project's vectors, the first search (which builds the table) and
//! hybrid search latency.
//!
//! Embedding every chunk of a 1 GB tree takes hours on a laptop's CPU, so only `sample`
//! chunks are embedded for real (the throughput figure: the shortest source chunks come
//! first, so it runs high); every other chunk gets a copy of one of their vectors, nudged so
//! that no two are equal. The rankings then mean nothing, but the store, the table, the scan
//! and the fusion hold and do the work of a fully embedded tree, which is what the timings
//! measure.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use perimeter_engine::embed::{Embedder, VectorStore};
use perimeter_engine::index::{ProjectIndex, SearchMode, SearchOptions};
use perimeter_engine::CancellationToken;
use serde_json::json;

/// Vectors written to the store per call while filling it.
const FILL_BATCH: usize = 4096;

/// Embeds `sample` chunks of `index` with the model in `model_dir`, fills in the rest, then
/// times what the app does: attach the model and its vectors, search hybrid for `queries`.
pub fn semantic_at_scale(
    index: &ProjectIndex,
    model_dir: &Path,
    sample: usize,
    queries: &[String],
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(sample > 0 && !queries.is_empty(), "need at least one chunk to embed and one query");
    let embedder = Arc::new(Embedder::load(model_dir)?);
    let mut store = VectorStore::open(&index.vectors_dir(), &embedder.id(), embedder.dims())?;
    let keys = index.unembedded_keys(&store)?;

    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    // Timed from the first progress report: listing what to embed reads every chunk first.
    let mut first_report: Option<Instant> = None;
    // What an embedding run holds: the model, the list of what to embed, the batch.
    let mut resident_while_embedding = None;
    let embedded = index.embed_chunks(
        &embedder,
        &mut store,
        &mut |p| {
            first_report.get_or_insert_with(Instant::now);
            resident_while_embedding = resident_while_embedding.max(crate::bench::rss_bytes());
            if p.chunks_done >= sample {
                stop.cancel();
            }
        },
        &cancel,
    )?;
    let embed_s = first_report.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let real: Vec<Vec<f32>> = keys.iter().filter_map(|k| store.get(k).transpose()).collect::<Result<_, _>>()?;
    anyhow::ensure!(!real.is_empty(), "the tree has no source chunk to embed");
    let missing: Vec<_> = keys.iter().filter(|k| !store.contains(k)).copied().collect();
    for (n, batch) in missing.chunks(FILL_BATCH).enumerate() {
        let copies = batch.iter().enumerate().map(|(i, k)| {
            let at = n * FILL_BATCH + i;
            (*k, nudged(&real[at % real.len()], at as u64))
        });
        store.insert(copies.collect())?;
    }
    let vectors = store.len();
    let store_bytes = std::fs::metadata(store.path()).map(|m| m.len()).unwrap_or(0);
    drop(store);

    // As the app opens a project: the vectors read from disk, the table built by the first search.
    let t = Instant::now();
    index.attach_embedder(embedder.clone())?;
    let attach_ms = ms(t);
    let options = SearchOptions::default();
    let t = Instant::now();
    index.retrieve_by(&queries[0], &options, SearchMode::Hybrid)?;
    let first_search_ms = ms(t);

    let (mut hybrid, mut semantic, mut question) = (Vec::new(), Vec::new(), Vec::new());
    for q in queries {
        let t = Instant::now();
        embedder.embed_query(q)?;
        question.push(ms(t));
        let t = Instant::now();
        index.retrieve_by(q, &options, SearchMode::Hybrid)?;
        hybrid.push(ms(t));
        let t = Instant::now();
        index.retrieve_by(q, &options, SearchMode::Semantic)?;
        semantic.push(ms(t));
    }
    let (search_after_save_ms, search_after_save_max_ms) = search_after_a_save(index, &queries[0])?;
    Ok(json!({
        "embedder": embedder.id(),
        "chunks_to_embed": keys.len(),
        "chunks_embedded": embedded.chunks_embedded,
        "embed_chunks_per_s": embedded.chunks_embedded as f64 / embed_s.max(1e-9),
        "resident_while_embedding_bytes": resident_while_embedding,
        "vectors": vectors,
        "vector_file_bytes": store_bytes,
        "attach_ms": attach_ms,
        "first_search_ms": first_search_ms,
        "question_embed_p50_ms": percentile(&mut question, 0.5),
        "hybrid_p50_ms": percentile(&mut hybrid, 0.5),
        "hybrid_p99_ms": percentile(&mut hybrid, 0.99),
        "semantic_p50_ms": percentile(&mut semantic, 0.5),
        "semantic_p99_ms": percentile(&mut semantic, 0.99),
        "search_after_save_ms": search_after_save_ms,
        "search_after_save_max_ms": search_after_save_max_ms,
        // With the project's vectors attached and the search table built, as in the app.
        "resident_after_searches_bytes": crate::bench::rss_bytes(),
        "peak_rss_bytes": crate::bench::peak_rss_bytes(),
    }))
}

/// A question right after a file is saved: the index changed, so the search table is built
/// again before the answer (the app does it in the background only after an embedding run).
/// Saved `SAVES` times (a save sometimes sets off a merge of index segments, which makes it
/// slower), the file changed each time: the median and the slowest, in ms. The file is a new
/// one, removed again afterwards.
fn search_after_a_save(index: &ProjectIndex, query: &str) -> anyhow::Result<(f64, f64)> {
    const SAVES: usize = 7;
    let name = format!("perimeter_bench_probe_semantic_{}.rs", std::process::id());
    let probe = index.root().join(&name);
    let paths = std::collections::BTreeSet::from([name]);
    let mut times = Vec::new();
    let timed = (0..SAVES).try_for_each(|i| -> anyhow::Result<()> {
        std::fs::write(&probe, format!("pub fn perimeter_bench_probe_{i}() {{}}\n"))?;
        index.update_paths(&paths)?;
        let t = Instant::now();
        index.retrieve_by(query, &SearchOptions::default(), SearchMode::Hybrid)?;
        times.push(ms(t));
        Ok(())
    });
    let _ = std::fs::remove_file(&probe);
    index.update_paths(&paths)?;
    timed?;
    Ok((percentile(&mut times, 0.5), percentile(&mut times, 1.0)))
}

/// `v` moved a little in a direction given by `seed`, at unit length again: copies of one
/// vector would tie for every question, which real vectors almost never do.
fn nudged(v: &[f32], seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out: Vec<f32> = v
        .iter()
        .map(|x| {
            // xorshift64: enough randomness to break ties, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            x + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
        })
        .collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The value below which a share `p` of `v` lies.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
