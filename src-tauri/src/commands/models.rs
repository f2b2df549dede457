//! Models view: the hardware, the catalog's fit, installed models, import and switch.

use std::path::PathBuf;

use perimeter_engine::hardware::HardwareProfile;
use perimeter_engine::models::store::{ImportMode, InstalledModel};
use perimeter_engine::models::{assess, Assessment, Catalog, ModelStore};
use serde::Serialize;
use tauri::{Emitter, State};

use super::{message, CmdResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct HardwareSummary {
    hardware: HardwareProfile,
    assessment: Assessment,
}

/// The hardware probe and each catalog model's fit. Async so the probe runs off the UI thread.
#[tauri::command]
pub async fn hardware_summary() -> HardwareSummary {
    let hardware = HardwareProfile::probe();
    let assessment = assess(&hardware, &Catalog::builtin());
    HardwareSummary { hardware, assessment }
}

#[derive(Serialize)]
pub struct ModelsOverview {
    installed: Vec<InstalledModel>,
    /// The installed model requests will use.
    active: Option<String>,
    loaded: Option<String>,
    folder: PathBuf,
}

#[tauri::command]
pub async fn models_list(state: State<'_, AppState>) -> CmdResult<ModelsOverview> {
    let store = ModelStore::default_location();
    let installed = store.list().map_err(message)?;
    let choice = state.model_choice.lock().expect("choice lock").clone();
    let active = match choice {
        Some(c) => Some(c),
        None => store
            .resolve(None, &Catalog::builtin())
            .ok()
            .and_then(|path| installed.iter().find(|m| m.file == path).map(|m| m.id.clone())),
    };
    let loaded = state.model.lock().await.as_ref().map(|m| m.name());
    Ok(ModelsOverview { installed, active, loaded, folder: store.dir().to_path_buf() })
}

#[derive(Clone, Serialize)]
struct ImportProgress {
    file: String,
    done: u64,
    total: u64,
}

/// Imports a `.gguf` file (copied into the model folder), with `model-import-progress` events.
#[tauri::command]
pub async fn model_import(app: tauri::AppHandle, path: PathBuf) -> CmdResult<InstalledModel> {
    let file = path.display().to_string();
    tauri::async_runtime::spawn_blocking(move || {
        let store = ModelStore::default_location();
        store.import(&path, ImportMode::Copy, &Catalog::builtin(), &mut |done, total| {
            let _ = app.emit("model-import-progress", ImportProgress { file: file.clone(), done, total });
        })
    })
    .await
    .map_err(message)?
    .map_err(message)
}

/// Makes `id` the model for the next request; the loaded one is let go.
#[tauri::command]
pub async fn model_select(state: State<'_, AppState>, id: String) -> CmdResult<()> {
    ModelStore::default_location().resolve(Some(&id), &Catalog::builtin()).map_err(message)?;
    *state.model_choice.lock().expect("choice lock") = Some(id);
    *state.model.lock().await = None;
    Ok(())
}

/// Removes an installed model (a copied file is deleted; a linked file is left where it is)
/// and lets it go if it is loaded.
#[tauri::command]
pub async fn model_remove(state: State<'_, AppState>, id: String) -> CmdResult<InstalledModel> {
    let removed = ModelStore::default_location().remove(&id).map_err(message)?;
    {
        let mut choice = state.model_choice.lock().expect("choice lock");
        if choice.as_deref() == Some(removed.id.as_str()) {
            *choice = None;
        }
    }
    *state.model.lock().await = None;
    Ok(removed)
}
