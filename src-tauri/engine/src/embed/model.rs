//! A sentence-embedding model (the BERT family, as sentence-transformers saves it) run on
//! candle: text in, one unit-length vector per text out.
//!
//! The folder is what sentence-transformers writes: `config.json`, `tokenizer.json`,
//! `model.safetensors`, and optionally `sentence_bert_config.json` (the token limit the
//! model was trained with) and `1_Pooling/config.json` (how token vectors become one).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// Tokens of a text read by default, if the model was trained on as many: on two cores
/// all-MiniLM-L6-v2 embeds ~9 chunks/s at 128 and ~3.6 at 256 (attention is quadratic, and
/// its score tensors are what candle's CPU backend spends its time allocating).
const DEFAULT_MAX_TOKENS: usize = 128;

/// How a text's token vectors are pooled into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

/// A loaded embedding model. Embedding is CPU work on the calling thread (candle spreads a
/// batch's matrix products over its own threads).
pub struct Embedder {
    id: String,
    model: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
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
    /// not a BERT model, a corrupt tensor file) is an [`Error::EmbeddingModel`].
    pub fn load(dir: &Path) -> Result<Embedder> {
        let bad = |reason: String| Error::EmbeddingModel { path: dir.to_path_buf(), reason };
        if !dir.is_dir() {
            return Err(bad("the folder does not exist".into()));
        }
        let read = |name: &str| -> Result<String> {
            std::fs::read_to_string(dir.join(name)).map_err(|e| bad(format!("{name}: {e}")))
        };
        let config: Config =
            serde_json::from_str(&read("config.json")?).map_err(|e| bad(format!("config.json is not a BERT config: {e}")))?;
        let max_tokens = optional_json(&dir.join("sentence_bert_config.json"))
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(DEFAULT_MAX_TOKENS, |n| (n as usize).min(DEFAULT_MAX_TOKENS))
            .min(config.max_position_embeddings);
        let pooling = match optional_json(&dir.join("1_Pooling/config.json")) {
            Some(v) if v["pooling_mode_cls_token"].as_bool() == Some(true) => Pooling::Cls,
            _ => Pooling::Mean,
        };
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));

        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| bad(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| bad(format!("model.safetensors is corrupt or truncated: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| bad(format!("model.safetensors does not fit config.json: {e}")))?;
        let id = format!("{}-{}d", folder_name(dir), config.hidden_size);
        let positions = config.max_position_embeddings;
        Ok(Embedder { id, model, tokenizer, pooling, dims: config.hidden_size, max_tokens, positions })
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

    /// One unit-length vector per text, in order. Texts are cut at [`Embedder::max_tokens`].
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |reason: String| Error::Embedding { reason };
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| failed(e.to_string()))?;
        let rows = encodings.len();
        let len = encodings[0].get_ids().len();
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, (rows, len), &Device::Cpu).map_err(|e| failed(e.to_string()));
        let ids = tensor(flat(&|e| e.get_ids()))?;
        let type_ids = tensor(flat(&|e| e.get_type_ids()))?;
        let mask = tensor(flat(&|e| e.get_attention_mask()))?;
        let pooled = (|| -> candle_core::Result<Tensor> {
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (rows, len, dims)
            let pooled = match self.pooling {
                Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
                Pooling::Mean => {
                    // Padding must not count: average over the real tokens only.
                    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                    sum.broadcast_div(&m.sum(1)?)?
                }
            };
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
            pooled.broadcast_div(&norm)
        })()
        .map_err(|e| failed(e.to_string()))?;
        pooled.to_vec2::<f32>().map_err(|e| failed(e.to_string()))
    }
}

fn optional_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn folder_name(dir: &Path) -> String {
    let dir: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "embedder".into())
}
