//! The projects a user has added: a list in the app's data folder. Each project's index
//! lives beside it in `projects/<id>/index`, keyed by the project's canonical path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::index::index_dir_for;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub root: PathBuf,
    pub index_dir: PathBuf,
}

/// The list of added projects, stored as JSON in the data folder.
pub struct Projects {
    file: PathBuf,
}

impl Projects {
    pub fn new(data_dir: &Path) -> Projects {
        Projects { file: data_dir.join("projects.json") }
    }

    pub fn default_location() -> Projects {
        Projects::new(&crate::paths::data_dir())
    }

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
        let project = Project { name, index_dir: index_dir_for(&root)?, root };
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
        if let Some(dir) = project.index_dir.parent().filter(|d| d.starts_with(self.file.parent().unwrap_or(Path::new("/nonexistent")))) {
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
