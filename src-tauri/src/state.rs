//! What the app holds between commands: the loaded model, the open projects (index and
//! watcher), and the cancellation token of every generation in flight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use perimeter_engine::index::watch::Watcher;
use perimeter_engine::index::ProjectIndex;
use perimeter_engine::inference::{CancellationToken, Model};
use perimeter_engine::projects::Projects;

/// A project the app has open: its index, and its watcher once the first indexing is done.
pub struct OpenProject {
    pub index: Arc<ProjectIndex>,
    pub watcher: Option<Watcher>,
}

#[derive(Default)]
pub struct AppState {
    /// The loaded model; loaded on first use, replaced when the user switches.
    pub model: tokio::sync::Mutex<Option<Arc<Model>>>,
    /// The model the user chose (an installed model's id); `None`: the recommended one.
    pub model_choice: Mutex<Option<String>>,
    pub projects: Mutex<HashMap<PathBuf, OpenProject>>,
    pub generations: Mutex<HashMap<String, CancellationToken>>,
    /// Model downloads in flight, by catalog id.
    pub downloads: Mutex<HashMap<String, CancellationToken>>,
}

impl AppState {
    /// The open project at `root`, opening it if it is a registered project. Every command
    /// that takes a project path comes through here, so none can reach an unregistered folder.
    pub fn project(&self, root: &Path) -> Result<Arc<ProjectIndex>, String> {
        let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
        // Held while opening: two commands opening one project at once would otherwise both
        // try to take the index's writer lock.
        let mut open = self.projects.lock().expect("projects lock");
        if let Some(p) = open.get(&root) {
            return Ok(p.index.clone());
        }
        let registered = Projects::default_location().list().map_err(|e| e.to_string())?;
        let project = registered
            .into_iter()
            .find(|p| p.root == root)
            .ok_or_else(|| format!("{} is not one of your projects; add it first", root.display()))?;
        let index = Arc::new(ProjectIndex::open(&project.root, &project.index_dir).map_err(|e| e.to_string())?);
        open.insert(root, OpenProject { index: index.clone(), watcher: None });
        Ok(index)
    }

    /// Registers a generation so `stop` (or closing the window) can cancel it.
    pub fn start_generation(&self, request: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.generations.lock().expect("generations lock").insert(request.to_string(), token.clone());
        token
    }

    pub fn end_generation(&self, request: &str) {
        self.generations.lock().expect("generations lock").remove(request);
    }

    /// Stops every generation and watcher: the window is closing.
    pub fn shut_down(&self) {
        for token in self.generations.lock().expect("generations lock").values() {
            token.cancel();
        }
        // A download stops with its bytes on disk, and resumes on the next Download.
        for token in self.downloads.lock().expect("downloads lock").values() {
            token.cancel();
        }
        for p in self.projects.lock().expect("projects lock").values_mut() {
            p.watcher = None;
        }
    }
}
