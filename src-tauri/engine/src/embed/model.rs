//! A sentence-embedding model as sentence-transformers saves it: text in, one unit-length
//! vector per text out. Two families run: BERT (all-MiniLM-L6-v2) on candle, and Gemma 3
//! (EmbeddingGemma) on mistral.rs.
//!
//! The folder holds `config.json` (its `model_type` says the family), `tokenizer.json`,
//! `model.safetensors`, and optionally `sentence_bert_config.json` (the token limit the model
//! was trained with), `1_Pooling/config.json` (how token vectors become one) and
//! `config_sentence_transformers.json` (the prompts a model was trained to read before a
//! query and before a document).

use std::path::{Path, PathBuf};

use candle_transformers::models::bert::Config as BertConfig;
use rayon::prelude::*;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::bert::BertNetwork;
use super::gemma::GemmaNetwork;
use crate::error::{Error, Result};

/// Tokens of a text read by default, if the model was trained on as many: all-MiniLM-L6-v2
/// embeds ~2.5x fewer chunks a second at 256 than at 128 (attention is quadratic, and its
/// score tensors are what candle's CPU backend spends its time allocating).
const DEFAULT_MAX_TOKENS: usize = 128;

/// The network behind an [`Embedder`].
enum Network {
    Bert(BertNetwork),
    Gemma(GemmaNetwork),
}

/// What the model reads before a text, by the text's role.
#[derive(Debug, Default)]
struct Prompts {
    query: String,
    document: String,
}

impl Prompts {
    /// The model's own prompts: for a query the code-retrieval task if it was trained on one
    /// (EmbeddingGemma's card names it for code), else its generic query prompt.
    fn read(dir: &Path) -> Prompts {
        let Some(config) = optional_json(&dir.join("config_sentence_transformers.json")) else { return Prompts::default() };
        let prompts = &config["prompts"];
        let text = |v: &serde_json::Value| v.as_str().map(String::from);
        let code = prompts.as_object().and_then(|p| p.values().filter_map(text).find(|p| p.contains("code retrieval")));
        Prompts {
            query: code.or_else(|| text(&prompts["query"])).unwrap_or_default(),
            document: text(&prompts["document"]).unwrap_or_default(),
        }
    }
}

/// A loaded embedding model.
pub struct Embedder {
    id: String,
    network: Network,
    tokenizer: Tokenizer,
    prompts: Prompts,
    dims: usize,
    max_tokens: usize,
    positions: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("id", &self.id).field("dims", &self.dims).finish()
    }
}

impl Embedder {
    /// Loads the sentence-transformers folder `dir`. Every way it can be unusable (missing,
    /// a family that does not run here, a corrupt tensor file, weights that give no numbers)
    /// is an [`Error::EmbeddingModel`].
    pub fn load(dir: &Path) -> Result<Embedder> {
        let bad = |reason: String| Error::EmbeddingModel { path: dir.to_path_buf(), reason };
        if !dir.is_dir() {
            return Err(bad("the folder does not exist".into()));
        }
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| bad(format!("config.json: {e}")))?;
        let config: serde_json::Value =
            serde_json::from_str(&config_text).map_err(|e| bad(format!("config.json is not JSON: {e}")))?;
        let positions = config["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
        let max_tokens = optional_json(&dir.join("sentence_bert_config.json"))
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(DEFAULT_MAX_TOKENS, |n| (n as usize).min(DEFAULT_MAX_TOKENS))
            .min(positions);
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        if !dir.join("model.safetensors").is_file() {
            return Err(bad("model.safetensors is missing".into()));
        }
        let network = match config["model_type"].as_str() {
            Some("bert") => {
                let config: BertConfig = serde_json::from_str(&config_text)
                    .map_err(|e| bad(format!("config.json is not a BERT config: {e}")))?;
                // BERT runs a batch as one tensor: texts padded to the longest.
                tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
                Network::Bert(BertNetwork::load(dir, &config).map_err(bad)?)
            }
            Some("gemma3_text") => Network::Gemma(GemmaNetwork::load(dir).map_err(bad)?),
            other => {
                return Err(bad(format!(
                    "it is a {} model; embedding runs BERT models (all-MiniLM-L6-v2) and EmbeddingGemma",
                    other.unwrap_or("unknown")
                )))
            }
        };
        let mut embedder = Embedder {
            id: folder_name(dir),
            network,
            tokenizer,
            prompts: Prompts::read(dir),
            dims: 0,
            max_tokens,
            positions,
        };
        // One text through the model: its width, and proof that the weights give numbers.
        let probe = embedder.embed_documents(&["fn main() {}"]).map_err(|e| bad(e.to_string()))?.remove(0);
        if probe.iter().any(|x| !x.is_finite()) {
            return Err(bad("the model gives NaN for a test text (corrupt weights?)".into()));
        }
        embedder.dims = probe.len();
        embedder.id = format!("{}-{}d", embedder.id, embedder.dims);
        Ok(embedder)
    }

    /// Names the model and how it reads: vectors of two embedders with the same id compare
    /// (a text cut at another length is another vector).
    pub fn id(&self) -> String {
        format!("{}-{}t", self.id, self.max_tokens)
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Tokens of a text the model reads; the rest is cut off.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Reads at most `n` tokens of each text (never more than the model's positions allow):
    /// attention's cost grows with the square of it.
    pub fn with_max_tokens(mut self, n: usize) -> Result<Embedder> {
        self.max_tokens = n.clamp(8, self.positions);
        let params = TruncationParams { max_length: self.max_tokens, ..Default::default() };
        self.tokenizer.with_truncation(Some(params)).map_err(|e| Error::Embedding { reason: e.to_string() })?;
        Ok(self)
    }

    /// One unit-length vector per text to be found (a chunk of code or docs), in order,
    /// each read after the model's document prompt and cut at [`Embedder::max_tokens`].
    pub fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed(&self.prompts.document, texts)
    }

    /// The unit-length vector of a question, read after the model's query prompt.
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&self.prompts.query, &[query])?.remove(0))
    }

    fn embed(&self, prompt: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |reason: String| Error::Embedding { reason };
        let prompted: Vec<String> = texts.iter().map(|t| format!("{prompt}{t}")).collect();
        let encodings = self.tokenizer.encode_batch(prompted, true).map_err(|e| failed(e.to_string()))?;
        let mut vectors = match &self.network {
            Network::Bert(bert) => {
                // One part of the batch per thread: candle spreads the matrix products over the
                // cores, but the rest of a forward pass (softmax, norms, allocations) runs on one.
                let part = encodings.len().div_ceil(rayon::current_num_threads().max(1));
                let parts: Vec<Vec<Vec<f32>>> = encodings
                    .par_chunks(part)
                    .map(|p| bert.vectors(p))
                    .collect::<candle_core::Result<_>>()
                    .map_err(|e| failed(e.to_string()))?;
                parts.into_iter().flatten().collect()
            }
            Network::Gemma(gemma) => gemma.vectors(encodings.iter().map(|e| e.get_ids().to_vec()).collect()).map_err(failed)?,
        };
        vectors.iter_mut().for_each(|v| normalize(v));
        Ok(vectors)
    }
}

/// Scales `v` to length 1 (a zero vector stays zero), so that a dot product is the cosine.
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub(super) fn optional_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn folder_name(dir: &Path) -> String {
    let dir: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "embedder".into())
}
