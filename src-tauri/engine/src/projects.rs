//! The projects a user has added: a list in the app's data folder. Each project has its own
//! folder there, `projects/<id>/` keyed by the project's canonical path, which holds its
//! index, conversations, proposals and history of applied changes; [`Project`] knows that
//! layout, so nothing else has to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::assistant::Conversations;
use crate::edit::{History, Proposals};
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
/// A folder the user added, and where its data is kept.
pub struct Project {
    /// What the UI shows: the folder's name.
    pub name: String,
    /// The user's folder (canonical).
    pub root: PathBuf,
    /// The tantivy index, in the project's folder in the app's data.
    pub index_dir: PathBuf,
}

impl Project {
    /// The project's folder in the app's data (never inside the user's folder).
    pub fn data_dir(&self) -> &Path {
        self.index_dir.parent().unwrap_or(&self.index_dir)
    }

    /// The project's saved conversations.
    pub fn conversations(&self) -> Conversations {
        Conversations::new(self.data_dir())
    }

    /// The project's edit proposals.
    pub fn proposals(&self) -> Proposals {
        Proposals::new(self.data_dir())
    }

    /// The applied changes, with what undo needs.
    pub fn history(&self) -> History {
        crate::edit::history(self.data_dir())
    }
}

/// The list of added projects, stored as JSON in the data folder.
pub struct Projects {
    file: PathBuf,
}

impl Projects {
    /// The project list in `data_dir`.
    pub fn new(data_dir: &Path) -> Projects {
        Projects { file: data_dir.join("projects.json") }
    }

    /// The project list in the app's data folder.
    pub fn default_location() -> Projects {
        Projects::new(&crate::paths::data_dir())
    }

    /// The added projects, in the order they were added.
    pub fn list(&self) -> Result<Vec<Project>> {
        match std::fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Catalog {
                path: self.file.clone(),
                reason: format!("unreadable list of projects ({e}); move it aside and add the projects again"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&self.file, e)),
        }
    }

    /// Adds the folder at `root` (again is fine: the existing entry is returned).
    pub fn add(&self, root: &Path) -> Result<Project> {
        let root = root.canonicalize().at(root)?;
        if !root.is_dir() {
            return Err(Error::NotAProjectFolder { path: root });
        }
        let mut all = self.list()?;
        if let Some(p) = all.iter().find(|p| p.root == root) {
            return Ok(p.clone());
        }
        let name = root.file_name().map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned());
        let id = hex::encode(&Sha256::digest(root.to_string_lossy().as_bytes())[..8]);
        let data_dir = self.file.parent().unwrap_or(Path::new("."));
        let project = Project { name, index_dir: data_dir.join("projects").join(id).join("index"), root };
        all.push(project.clone());
        self.save(&all)?;
        Ok(project)
    }

    /// Removes a project and deletes its index (never anything in the project itself).
    pub fn remove(&self, root: &Path) -> Result<Option<Project>> {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut all = self.list()?;
        let Some(pos) = all.iter().position(|p| p.root == root) else { return Ok(None) };
        let project = all.remove(pos);
        self.save(&all)?;
        // Only a folder of our own layout inside the data folder is deleted.
        let (dir, data_dir) = (project.data_dir(), self.file.parent().unwrap_or(Path::new("/nonexistent")));
        if dir != project.index_dir && dir.starts_with(data_dir) {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(Some(project))
    }

    fn save(&self, all: &[Project]) -> Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        crate::paths::write_atomically(&self.file, &serde_json::to_vec_pretty(all).expect("projects serialize"))
    }
}
