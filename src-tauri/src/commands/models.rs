//! Models view: the hardware, the catalog's fit, installed models, import and switch.

use std::path::PathBuf;

use perimeter_engine::hardware::HardwareProfile;
use perimeter_engine::inference::CancellationToken;
use perimeter_engine::models::download::{self, partial_download, PullOptions, PullProgress};
use perimeter_engine::models::store::{ImportMode, InstalledModel};
use perimeter_engine::models::{assess, Assessment, Catalog, ModelStore, Role};
use perimeter_engine::network::{ConnectionLog, NetworkPolicy};
use serde::Serialize;
use tauri::{Emitter, State};

use super::{message, CmdResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct HardwareSummary {
    hardware: HardwareProfile,
    assessment: Assessment,
}

/// The hardware probe and each catalog model's fit. Async so the probe (and, the first time
/// on a machine, its ~0.2 s memory bandwidth measurement) runs off the UI thread.
#[tauri::command]
pub async fn hardware_summary() -> HardwareSummary {
    let hardware = HardwareProfile::probe().with_memory_bandwidth(&perimeter_engine::paths::data_dir());
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
    catalog: Vec<CatalogEntry>,
}

/// A catalog model as the Models view lists it, with its download state.
#[derive(Serialize)]
pub struct CatalogEntry {
    id: String,
    display_name: String,
    quantization: String,
    size_bytes: u64,
    role: Role,
    installed: bool,
    /// Bytes an unfinished download left (resumable).
    partial_bytes: u64,
    downloading: bool,
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
    let downloading = state.downloads.lock().expect("downloads lock").keys().cloned().collect::<Vec<_>>();
    let catalog = Catalog::builtin()
        .models
        .iter()
        .map(|m| CatalogEntry {
            id: m.id.clone(),
            display_name: m.display_name.clone(),
            quantization: m.quantization.clone(),
            size_bytes: m.size_bytes,
            role: m.role,
            installed: installed.iter().any(|i| i.catalog_id.as_deref() == Some(m.id.as_str())),
            partial_bytes: partial_download(&store, m).map_or(0, |(n, _)| n),
            downloading: downloading.contains(&m.id),
        })
        .collect();
    Ok(ModelsOverview { installed, active, loaded, folder: store.dir().to_path_buf(), catalog })
}

/// Downloads catalog model `id` from a source the network policy allows, with
/// `model-download-progress` events; resumes what an earlier download left.
#[tauri::command]
pub async fn model_pull(app: tauri::AppHandle, state: State<'_, AppState>, id: String) -> CmdResult<InstalledModel> {
    let cancel = CancellationToken::new();
    {
        let mut downloads = state.downloads.lock().expect("downloads lock");
        if downloads.contains_key(&id) {
            return Err(format!("{id} is already being downloaded"));
        }
        downloads.insert(id.clone(), cancel.clone());
    }
    let result = async {
        let policy = NetworkPolicy::default_location().map_err(message)?;
        let (store, catalog, log) = (ModelStore::default_location(), Catalog::builtin(), ConnectionLog::default_location());
        let mut progress = |p: &PullProgress| {
            let _ = app.emit("model-download-progress", p);
        };
        download::pull(&store, &catalog, &id, &policy, &log, &PullOptions::default(), &mut progress, &cancel).await.map_err(message)
    }
    .await;
    state.downloads.lock().expect("downloads lock").remove(&id);
    result
}

/// Stops the download of `id`; what was downloaded is kept for a later resume.
#[tauri::command]
pub fn model_pull_cancel(state: State<'_, AppState>, id: String) {
    if let Some(c) = state.downloads.lock().expect("downloads lock").get(&id) {
        c.cancel();
    }
}

/// Deletes what an unfinished download of `id` left.
#[tauri::command]
pub fn model_discard_download(state: State<'_, AppState>, id: String) -> CmdResult<u64> {
    if state.downloads.lock().expect("downloads lock").contains_key(&id) {
        return Err(format!("{id} is being downloaded; cancel it first"));
    }
    let catalog = Catalog::builtin();
    let model = catalog.get(&id).ok_or_else(|| format!("no catalog model `{id}`"))?;
    ModelStore::default_location().discard_partial(&model.file_name).map_err(message)
}

#[derive(Clone, Serialize)]
struct ImportProgress {
    file: String,
    done: u64,
    total: u64,
}

/// Imports a `.gguf` file, copied (or with `move_file`, moved) into the model folder, with
/// `model-import-progress` events.
#[tauri::command]
pub async fn model_import(app: tauri::AppHandle, path: PathBuf, move_file: Option<bool>) -> CmdResult<InstalledModel> {
    let file = path.display().to_string();
    let mode = if move_file == Some(true) { ImportMode::Move } else { ImportMode::Copy };
    tauri::async_runtime::spawn_blocking(move || {
        let store = ModelStore::default_location();
        store.import(&path, mode, &Catalog::builtin(), &mut |done, total| {
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
