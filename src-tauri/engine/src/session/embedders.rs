//! Which embedding model search by meaning uses: the catalog's embedders as the user can
//! choose them, the choice kept in the settings, the chosen one loaded once and attached to
//! every open project.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Session;
use crate::embed::{Embedder, DEFAULT_EMBEDDER};
use crate::error::{Error, Result};
use crate::models::Catalog;

/// An embedding model of the catalog, as the window lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct EmbedderChoice {
    /// Catalog id, also its folder's name in the models folder.
    pub id: String,
    /// The name shown.
    pub display_name: String,
    /// What it is good at and what it costs, in a sentence.
    pub summary: String,
    /// Bytes of its weights.
    #[ts(type = "number")]
    pub size_bytes: u64,
    /// Its folder is in the models folder.
    pub installed: bool,
    /// Search uses it.
    pub selected: bool,
}

impl Session {
    /// The catalog's embedding models, with which are installed and which is chosen.
    pub fn embedders(&self) -> Vec<EmbedderChoice> {
        let chosen = self.chosen_embedder();
        Catalog::builtin()
            .embedders
            .into_iter()
            .map(|e| EmbedderChoice {
                installed: self.embedder_dir(&e.id).join("model.safetensors").is_file(),
                selected: e.id == chosen,
                id: e.id,
                display_name: e.display_name,
                summary: e.summary,
                size_bytes: e.size_bytes,
            })
            .collect()
    }

    /// The chosen embedding model, loaded once (and again after the choice changes); `Err`
    /// says why search is lexical only (not installed, or unusable).
    pub fn embedder(&self) -> std::result::Result<Arc<Embedder>, String> {
        let id = self.chosen_embedder();
        let mut slot = self.embedder.lock().expect("embedder lock");
        match slot.as_ref() {
            Some((loaded, result)) if *loaded == id => result.clone(),
            _ => {
                let dir = self.embedder_dir(&id);
                let result = if dir.exists() {
                    Embedder::load(&dir).map(Arc::new).map_err(|e| e.to_string())
                } else {
                    Err(format!("no embedding model is installed ({} is missing); search is lexical", dir.display()))
                };
                *slot = Some((id, result.clone()));
                result
            }
        }
    }

    /// Makes embedding model `id` the one search uses, from now on and in later runs: loaded
    /// first (a model that cannot be used leaves the choice as it was), then attached to every
    /// open project. Their vectors for it are embedded by the host's next embedding run (an
    /// embedding run in flight goes on with the new model); vectors of the other model are
    /// kept for a switch back.
    pub fn choose_embedder(&self, id: &str) -> Result<Arc<Embedder>> {
        let catalog = Catalog::builtin();
        if !catalog.embedders.iter().any(|e| e.id == id) {
            let known = catalog.embedders.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", ");
            return Err(Error::UnknownEmbedder { id: id.to_string(), known });
        }
        let embedder = Arc::new(Embedder::load(&self.embedder_dir(id))?);
        self.update_settings(|s| s.embedder = Some(id.to_string()))?;
        *self.embedder.lock().expect("embedder lock") = Some((id.to_string(), Ok(embedder.clone())));
        for p in self.projects.lock().expect("projects lock").values() {
            p.index.attach_embedder(embedder.clone())?;
        }
        Ok(embedder)
    }

    /// The chosen embedder's id: the setting, else the default.
    fn chosen_embedder(&self) -> String {
        self.settings().embedder.unwrap_or_else(|| DEFAULT_EMBEDDER.to_string())
    }

    fn embedder_dir(&self, id: &str) -> PathBuf {
        self.model_store().dir().join(id)
    }
}
