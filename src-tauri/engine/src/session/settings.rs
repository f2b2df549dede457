//! What the user chose, kept between runs in `<data>/settings.toml`: the model requests use
//! and the company server, if any. Both hosts read the same file, so the app and the CLI
//! answer with the same model. The server's API key is not here: it is in the OS keychain.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The company inference server the user chose; no URL means the model on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Base URL of the server; `None`: the model on this machine.
    pub url: Option<String>,
    /// The server's model to ask for; its first model when `None`.
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
/// What the user chose, kept in the data folder's `settings.toml`.
pub struct Settings {
    /// An installed model's id or a `.gguf` path; `None`: the largest installed model.
    pub model: Option<String>,
    /// The company server, if any.
    pub server: ServerSettings,
    /// The embedding model of search by meaning (a catalog id); `None`: the default one.
    pub embedder: Option<String>,
}

impl Settings {
    /// Where the settings are kept in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("settings.toml")
    }

    /// The settings in `data_dir`; defaults when there are none yet. Versions before this
    /// file kept the server alone in `server.toml`, which is read once in its place.
    pub fn load(data_dir: &Path) -> Result<Settings> {
        let path = Settings::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| invalid(&path, e.message())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = data_dir.join("server.toml");
                match std::fs::read_to_string(&legacy) {
                    Ok(text) => Ok(Settings {
                        server: toml::from_str(&text).map_err(|e| invalid(&legacy, e.message()))?,
                        ..Settings::default()
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
                    Err(e) => Err(Error::io(&legacy, e)),
                }
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Writes the settings atomically into `data_dir`.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let path = Settings::path(data_dir);
        let text = toml::to_string(self).map_err(|e| invalid(&path, &e.to_string()))?;
        crate::paths::write_atomically(&path, text.as_bytes())
    }
}

fn invalid(path: &Path, reason: &str) -> Error {
    Error::Settings { path: path.to_path_buf(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_the_older_server_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), Settings::default());
        std::fs::write(dir.path().join("server.toml"), "url = \"http://10.0.0.5:8080\"\n").unwrap();
        let old = Settings::load(dir.path()).unwrap();
        assert_eq!(old.server.url.as_deref(), Some("http://10.0.0.5:8080"));
        let chosen = Settings { model: Some("qwen".into()), server: ServerSettings::default(), embedder: Some("embeddinggemma-300m".into()) };
        chosen.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), chosen, "the new file wins over server.toml");
    }

    #[test]
    fn a_broken_file_says_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Settings::path(dir.path()), "model = [").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("settings.toml"), "{e}");
    }
}
