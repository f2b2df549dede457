//! Installed models: the files in the app's model folder and the manifest that lists them.
//!
//! An import reads the file's GGUF header first (so a corrupt file or an architecture we
//! cannot run is refused before anything is copied), hashes it while copying to a partial
//! file, and only then renames it into place and records it. A linked import leaves the
//! user's file where it is; removing such a model never deletes the user's file.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::catalog::Catalog;
use super::gguf::{read_info, GgufInfo};
use crate::error::{Error, IoContext, Result};
use crate::models::gguf::SUPPORTED_ARCHITECTURES;

const MANIFEST: &str = "installed.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// A model file the store holds or links to.
pub struct InstalledModel {
    /// The catalog id when the file is a catalog model, else the file's name without `.gguf`.
    pub id: String,
    /// The catalog entry the file is, by its name and size.
    pub catalog_id: Option<String>,
    /// The GGUF file.
    pub file: PathBuf,
    /// The file stays where the user keeps it; the app never deletes it.
    pub linked: bool,
    /// The file's SHA-256, computed at import.
    pub sha256: String,
    /// What the file says about the model.
    pub info: GgufInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How an import takes the user's file.
pub enum ImportMode {
    /// Copied into the model folder; the original stays.
    Copy,
    /// Into the model folder by rename when it is on the same disk (instant for big files),
    /// else copied, checked, and only then is the original deleted.
    Move,
    /// Left where it is, and recorded by path.
    Link,
}

/// Result of re-checking one installed model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The installed model's id.
    pub id: String,
    /// The file is there and unchanged.
    pub ok: bool,
    /// What is wrong, when something is.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    models: Vec<InstalledModel>,
}

/// The installed models: a folder of GGUF files and a manifest of what each is.
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    /// The store in `dir` (created on the first import).
    pub fn new(dir: impl Into<PathBuf>) -> ModelStore {
        ModelStore { dir: dir.into() }
    }

    /// The store in the app's data folder.
    pub fn default_location() -> ModelStore {
        ModelStore::new(crate::paths::models_dir())
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The installed models, in the order they were installed.
    pub fn list(&self) -> Result<Vec<InstalledModel>> {
        Ok(self.read_manifest()?.models)
    }

    /// Finds an installed model by id, catalog id or file name.
    pub fn find(&self, name: &str) -> Result<Option<InstalledModel>> {
        let stem = name.strip_suffix(".gguf").unwrap_or(name);
        Ok(self.list()?.into_iter().find(|m| {
            m.id.eq_ignore_ascii_case(stem)
                || m.catalog_id.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(stem))
                || m.file.file_name().is_some_and(|f| f.to_string_lossy().eq_ignore_ascii_case(name))
        }))
    }

    /// The model file to run for `name`: a path to a `.gguf` file, an installed model's name,
    /// or, with no name, the installed model with most parameters. A path that does not
    /// exist is an error, never a name to look up elsewhere.
    pub fn resolve(&self, name: Option<&str>, catalog: &Catalog) -> Result<PathBuf> {
        let Some(name) = name else {
            let models = self.list()?;
            return models
                .iter()
                .filter(|m| m.file.is_file())
                .max_by_key(|m| m.info.parameter_count)
                .map(|m| m.file.clone())
                .ok_or(Error::NoModelInstalled);
        };
        let looks_like_path = name.contains('/') || name.contains('\\') || name.ends_with(".gguf");
        if let Some(m) = self.find(name)? {
            return Ok(m.file);
        }
        if looks_like_path || Path::new(name).exists() {
            let path = PathBuf::from(name);
            if !path.exists() {
                return Err(Error::ModelNotFound { path });
            }
            return Ok(path);
        }
        if catalog.get(name).is_some() {
            return Err(Error::ModelNotInstalled { name: name.to_string() });
        }
        Err(Error::UnknownModel { name: name.to_string() })
    }

    /// Imports the GGUF file at `source`, reporting `(bytes done, bytes total)` as it goes.
    pub fn import(
        &self,
        source: &Path,
        mode: ImportMode,
        catalog: &Catalog,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<InstalledModel> {
        let info = runnable_info(source)?;
        let source = source.canonicalize().at(source)?;
        let file_name = source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        fs::create_dir_all(&self.dir).at(&self.dir)?;

        let dest = self.dir.join(&file_name);
        let already_here = dest.exists() && dest.canonicalize().ok().as_deref() == Some(source.as_path());
        let (file, sha256) = match mode {
            ImportMode::Link => (source.clone(), hash_file(&source, progress)?),
            _ if already_here => (dest.clone(), hash_file(&dest, progress)?),
            ImportMode::Copy => {
                let sha = copy_hashing(&source, &dest, &self.partial_path(&file_name), progress)?;
                (dest, sha)
            }
            ImportMode::Move => {
                // The hash is checked before the original goes: rename keeps the same bytes,
                // and a copy is hashed as it is written.
                let sha = match fs::rename(&source, &dest) {
                    Ok(()) => hash_file(&dest, progress)?,
                    Err(_) => copy_hashing(&source, &dest, &self.partial_path(&file_name), progress)?,
                };
                (dest, sha)
            }
        };

        let entry = catalog.by_file_name(&file_name).or_else(|| {
            catalog.models.iter().find(|m| m.sha256.as_deref() == Some(sha256.as_str()))
        });
        if let Some(expected) = entry.and_then(|e| e.sha256.as_deref()) {
            if expected != sha256 {
                match mode {
                    ImportMode::Copy => {
                        let _ = fs::remove_file(&file);
                    }
                    // The user's file was moved here: put it back rather than delete it.
                    ImportMode::Move if !already_here => {
                        if fs::rename(&file, &source).is_err() {
                            let _ = fs::copy(&file, &source).and_then(|_| fs::remove_file(&file));
                        }
                    }
                    _ => {}
                }
                return Err(Error::CorruptGguf {
                    path: source,
                    reason: format!("its sha256 is {sha256}, the catalog expects {expected} for this file"),
                });
            }
        }
        if mode == ImportMode::Move && !already_here && source.exists() {
            fs::remove_file(&source).at(&source)?;
        }
        let id = entry
            .map(|e| e.id.clone())
            .unwrap_or_else(|| file_name.strip_suffix(".gguf").unwrap_or(&file_name).to_string());
        self.record(InstalledModel {
            id,
            catalog_id: entry.map(|e| e.id.clone()),
            file,
            linked: mode == ImportMode::Link,
            sha256,
            info,
        })
    }

    /// Where a download of `file_name` is written until it is complete and verified.
    pub fn partial_path(&self, file_name: &str) -> PathBuf {
        self.dir.join(format!("{file_name}.part"))
    }

    /// Installs a finished download: `part` is checked as a model this app can run, renamed to
    /// `file_name` in the model folder, and listed. `sha256` is the hash computed while downloading.
    pub fn install_download(&self, part: &Path, file_name: &str, sha256: String, catalog_id: &str) -> Result<InstalledModel> {
        let info = runnable_info(part)?;
        let dest = self.dir.join(file_name);
        File::open(part).and_then(|f| f.sync_all()).at(part)?;
        fs::rename(part, &dest).at(&dest)?;
        self.record(InstalledModel {
            id: catalog_id.to_string(),
            catalog_id: Some(catalog_id.to_string()),
            file: dest,
            linked: false,
            sha256,
            info,
        })
    }

    /// Where a download of `file_name` keeps what it needs to resume (the source and its ETag).
    pub fn partial_notes_path(&self, file_name: &str) -> PathBuf {
        self.dir.join(format!("{file_name}.part.json"))
    }

    /// Deletes what an unfinished download of `file_name` left (the partial file and its notes).
    /// Returns the bytes freed; 0 when there was nothing.
    pub fn discard_partial(&self, file_name: &str) -> Result<u64> {
        let part = self.partial_path(file_name);
        let size = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        for p in [part, self.partial_notes_path(file_name)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(size)
    }

    /// Adds (or replaces) a model in the list, under the manifest lock.
    fn record(&self, model: InstalledModel) -> Result<InstalledModel> {
        let _lock = self.lock_manifest()?;
        let mut manifest = self.read_manifest()?;
        manifest.models.retain(|m| m.id != model.id);
        manifest.models.push(model.clone());
        self.write_manifest(&manifest)?;
        Ok(model)
    }

    /// An exclusive lock on the list of models, so that two windows or commands finishing an
    /// import or download at once do not lose each other's entry. Released when dropped.
    fn lock_manifest(&self) -> Result<File> {
        let path = self.lock_path("installed");
        let f = File::options().create(true).truncate(false).write(true).open(&path).at(&path)?;
        f.lock().at(&path)?;
        Ok(f)
    }

    /// A lock file under `<models>/.locks/` (created; never deleted, so a lock is always on one file).
    pub(crate) fn lock_path(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(".locks");
        let _ = fs::create_dir_all(&dir);
        dir.join(format!("{name}.lock"))
    }

    /// Removes the installed model `name` from the list. A copied file is deleted with what an
    /// interrupted copy left beside it; a linked file is the user's and is never touched.
    pub fn remove(&self, name: &str) -> Result<InstalledModel> {
        let model = self.find(name)?.ok_or_else(|| Error::UnknownModel { name: name.to_string() })?;
        {
            let _lock = self.lock_manifest()?;
            let mut manifest = self.read_manifest()?;
            manifest.models.retain(|m| m.id != model.id);
            // The list first: a model whose file is gone but still listed would look installed.
            self.write_manifest(&manifest)?;
        }
        if !model.linked {
            // Only files inside the model folder are ours to delete.
            if model.file.parent() == Some(self.dir.as_path()) {
                match fs::remove_file(&model.file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&model.file, e)),
                }
                if let Some(name) = model.file.file_name() {
                    self.discard_partial(&name.to_string_lossy())?;
                }
            }
        }
        Ok(model)
    }

    /// Re-reads every installed model: the file is there, its header is sound, its hash is
    /// the one recorded at import (and the catalog's, where the catalog knows it).
    pub fn verify(&self, catalog: &Catalog, progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<VerifyReport>> {
        let mut reports = Vec::new();
        for m in self.list()? {
            let problem = (|| -> Result<Option<String>> {
                read_info(&m.file)?;
                let sha = hash_file(&m.file, progress)?;
                if sha != m.sha256 {
                    return Ok(Some(format!("the file changed since it was imported (sha256 {sha})")));
                }
                if let Some(expected) = m.catalog_id.as_deref().and_then(|c| catalog.get(c)).and_then(|c| c.sha256.clone()) {
                    if expected != sha {
                        return Ok(Some(format!("sha256 {sha} differs from the catalog's {expected}")));
                    }
                }
                Ok(None)
            })()
            .unwrap_or_else(|e| Some(e.to_string()));
            reports.push(VerifyReport { id: m.id, ok: problem.is_none(), problem });
        }
        Ok(reports)
    }

    fn read_manifest(&self) -> Result<Manifest> {
        let path = self.dir.join(MANIFEST);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Catalog {
                path: path.clone(),
                reason: format!("unreadable list of installed models ({e}); move it aside and import the models again"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        crate::paths::write_atomically(&self.dir.join(MANIFEST), &json)
    }
}

/// The GGUF header of `path`, refused when its architecture is not one this app can run.
fn runnable_info(path: &Path) -> Result<GgufInfo> {
    let info = read_info(path)?;
    if !SUPPORTED_ARCHITECTURES.contains(&info.architecture.as_str()) {
        return Err(Error::UnsupportedArchitecture {
            path: path.to_path_buf(),
            architecture: info.architecture,
            supported: SUPPORTED_ARCHITECTURES.join(", "),
        });
    }
    Ok(info)
}

const CHUNK: usize = 1 << 20;

fn hash_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<String> {
    let mut f = File::open(path).at(path)?;
    let total = f.metadata().at(path)?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copies `src` to `dest` through `part`, hashing on the way; `dest` appears only whole.
fn copy_hashing(src: &Path, dest: &Path, part: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<String> {
    let result = (|| {
        let mut from = File::open(src).at(src)?;
        let total = from.metadata().at(src)?.len();
        let mut to = File::create(part).at(part)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        loop {
            let n = from.read(&mut buf).at(src)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n]).at(part)?;
            done += n as u64;
            progress(done, total);
        }
        to.sync_all().at(part)?;
        fs::rename(part, dest).at(dest)?;
        Ok(hex::encode(hasher.finalize()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(part);
    }
    result
}
