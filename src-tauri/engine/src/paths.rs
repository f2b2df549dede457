//! Where the app keeps its files: one data folder per user, never inside a user's project.
//!
//! `PERIMETER_DATA_DIR` overrides it (tests, portable installs); otherwise the OS's data
//! folder (`~/.local/share/perimeter` on Linux).

use std::path::PathBuf;
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
