//! Where the app keeps its files: one data folder per user, never inside a user's project.
//!
//! `PERIMETER_DATA_DIR` overrides it (tests, portable installs); otherwise the OS's data
//! folder (`~/.local/share/perimeter` on Linux).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use std::sync::Once;

/// The app's data folder. Not created here.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PERIMETER_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("perimeter")
}

/// Installed model files and their manifest.
pub fn models_dir() -> PathBuf {
    data_dir().join("models")
}

/// mistral.rs creates a Hugging Face cache folder under `HF_HOME` and reads tokens from it.
/// Point it inside our data folder and mark the hub offline, once, before the first load,
/// so nothing lands in the user's home and no code path can reach the hub.
pub fn keep_model_hub_offline() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let hub = data_dir().join("hf-offline");
        std::env::set_var("HF_HOME", &hub);
        std::env::set_var("HF_HUB_CACHE", hub.join("hub"));
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::remove_var("HF_TOKEN");
        std::env::remove_var("HF_HUB_TOKEN");
    });
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one:
/// written to a temporary file beside it, synced, then renamed over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, bytes, None)
}

/// [`write_atomically`], giving the new file `permissions` (a user's file keeps its mode).
/// The temporary file is removed if anything fails, so a full disk leaves no debris.
pub fn write_atomically_with(path: &Path, bytes: &[u8], permissions: Option<std::fs::Permissions>) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.perimeter-{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if let Some(p) = permissions {
            f.set_permissions(p)?;
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).at(path);
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    }).at(path)
}
