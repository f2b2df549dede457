//! The model catalog (`models/catalog.toml`): every model a user can run, with what the
//! hardware fit and the download need to know before the file is on the machine.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The catalog shipped with this build.
const BUILTIN: &str = include_str!("../../../../models/catalog.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
/// What a catalog model is for.
pub enum Role {
    /// Offered to users and considered by the hardware pick.
    Assistant,
    /// The tiny model development builds and the test suite run on; never recommended.
    Development,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// One model the app knows how to get and run.
pub struct CatalogModel {
    /// Short id users type (`qwen2.5-coder-1.5b`).
    pub id: String,
    /// The name the UI shows.
    pub display_name: String,
    /// Model family (`Qwen2.5-Coder`).
    pub family: String,
    /// Parameter count.
    pub parameters: u64,
    /// Quantization of the file (`Q4_K_M`).
    pub quantization: String,
    /// GGUF `general.architecture`.
    pub architecture: String,
    /// The GGUF file's name in the model folder.
    pub file_name: String,
    /// The file's exact size.
    pub size_bytes: u64,
    #[serde(default)]
    /// The file's SHA-256, checked after a download or import.
    pub sha256: Option<String>,
    /// Trained context window in tokens.
    pub context_length: u64,
    /// Transformer layers (for the KV-cache size).
    pub layers: u64,
    /// Key/value heads (for the KV-cache size).
    pub kv_heads: u64,
    /// Dimension of a head (for the KV-cache size).
    pub head_dim: u64,
    /// The model's licence, as its publisher names it.
    pub license: String,
    /// Offered to users, or the development model.
    pub role: Role,
    /// Download URLs, tried in order (each under the network policy).
    pub sources: Vec<String>,
}

impl CatalogModel {
    /// Bytes of KV cache per token of context, keys and values at 16-bit precision.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.layers * self.kv_heads * self.head_dim * 2
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The models the app knows (`models/catalog.toml`).
pub struct Catalog {
    #[serde(rename = "model")]
    /// In the file's order.
    pub models: Vec<CatalogModel>,
    #[serde(rename = "embedder", default)]
    /// Embedding models for semantic search, in the file's order.
    pub embedders: Vec<CatalogEmbedder>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// An embedding model: a sentence-transformers folder, not a GGUF file.
pub struct CatalogEmbedder {
    /// Its folder's name in the models folder (`all-minilm-l6-v2`).
    pub id: String,
    /// The name the UI shows.
    pub display_name: String,
    /// `bert` (candle) and `gemma3` (mistral.rs) run.
    pub architecture: String,
    /// Parameter count.
    pub parameters: u64,
    /// Length of its vectors.
    pub dims: usize,
    /// Bytes of its model.safetensors.
    pub size_bytes: u64,
    /// sha256 of its model.safetensors.
    pub sha256: String,
    /// SPDX id or the licence's name.
    pub license: String,
    /// `default`: used unless the user picks another; `option`: the user may pick it.
    pub role: String,
    /// What it is good at and what it costs, in a sentence for the window.
    pub summary: String,
    /// Where it is published.
    pub sources: Vec<String>,
}

impl Catalog {
    /// The catalog built into this version of Perimeter.
    pub fn builtin() -> Catalog {
        Catalog::parse(BUILTIN, Path::new("models/catalog.toml")).expect("the built-in catalog is checked by a test")
    }

    /// Reads a catalog file (an administrator's replacement for the built-in one).
    pub fn load(path: &Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Catalog::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Catalog> {
        let bad = |reason: String| Error::Catalog { path: path.to_path_buf(), reason };
        let catalog: Catalog = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for m in &catalog.models {
            if !seen.insert(m.id.as_str()) {
                return Err(bad(format!("model id `{}` appears twice", m.id)));
            }
            if let Some(sha) = &m.sha256 {
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("model `{}` has a malformed sha256", m.id)));
                }
            }
        }
        Ok(catalog)
    }

    /// The model with this id (any case).
    pub fn get(&self, id: &str) -> Option<&CatalogModel> {
        self.models.iter().find(|m| m.id.eq_ignore_ascii_case(id))
    }

    /// The catalog entry for a file, by its name (what an import or download produces).
    pub fn by_file_name(&self, file_name: &str) -> Option<&CatalogModel> {
        self.models.iter().find(|m| m.file_name == file_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_required_models() {
        let c = Catalog::builtin();
        for size in ["0.5b", "1.5b", "3b", "7b", "14b", "32b"] {
            let id = format!("qwen2.5-coder-{size}-instruct-q4_k_m");
            assert!(c.get(&id).is_some(), "{id} missing");
        }
        for size in ["0.5b", "1.5b"] {
            assert!(c.get(&format!("qwen2.5-coder-{size}-instruct-q8_0")).is_some());
        }
        let default_embedder = c.embedders.iter().find(|e| e.role == "default").unwrap();
        assert_eq!(default_embedder.id, crate::embed::DEFAULT_EMBEDDER);
        // The script that installs it checks the same hash.
        let script = include_str!("../../../../scripts/fetch-models.sh");
        assert!(script.contains(&format!("MINILM_SHA={}", default_embedder.sha256)));
        let dev = c.get("smollm2-135m-instruct-q4_1").unwrap();
        assert_eq!(dev.role, Role::Development);
        assert!(dev.sha256.is_some());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let one = BUILTIN.split("\n[[model]]").nth(1).unwrap();
        let twice = format!("[[model]]{one}\n[[model]]{one}");
        let err = Catalog::parse(&twice, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
