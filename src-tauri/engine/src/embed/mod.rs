//! Semantic retrieval's half of the work: an embedding model turns chunks and questions into
//! vectors ([`Embedder`]), and a [`VectorStore`] keeps each chunk's vector by a hash of its
//! text, so only new or changed chunks are ever embedded. Ranking with them lives in
//! [`crate::index`] (semantic and hybrid search).

mod bert;
mod gemma;
mod model;
mod store;

pub use model::Embedder;
pub use store::{vector_key, VectorKey, VectorReader, VectorStore};

/// The embedding model used unless the user picks another: small (91 MB) and fast enough on
/// two cores. `scripts/fetch-models.sh --embed` installs it for development.
pub const DEFAULT_EMBEDDER: &str = "all-minilm-l6-v2";

