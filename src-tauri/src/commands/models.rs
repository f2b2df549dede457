//! Models view: the hardware, the catalog's fit, installed models, import and switch.

use std::path::PathBuf;

use perimeter_engine::hardware::HardwareProfile;
use perimeter_engine::models::download::{self, partial_download, PullOptions, PullProgress};
use perimeter_engine::models::store::{ImportMode, InstalledModel};
use perimeter_engine::models::{assess, Assessment, Catalog, Role};
use perimeter_engine::network::{ConnectionLog, NetworkPolicy};
use perimeter_engine::session::EmbedderChoice;
use serde::Serialize;
use tauri::{Manager, State};

use super::{message, CmdError, CmdResult};
use crate::events::{self, ImportProgress};
use crate::state::AppState;

/// Downloads are session jobs named by this prefix and the catalog id.
const DOWNLOAD_JOB: &str = "download:";

#[derive(Serialize, ts_rs::TS)]
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

#[derive(Serialize, ts_rs::TS)]
pub struct ModelsOverview {
    installed: Vec<InstalledModel>,
    /// The installed model requests will use.
    active: Option<String>,
    loaded: Option<String>,
    folder: PathBuf,
    catalog: Vec<CatalogEntry>,
}

/// A catalog model as the Models view lists it, with its download state.
#[derive(Serialize, ts_rs::TS)]
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
    let store = state.session.model_store();
    let installed = store.list().map_err(CmdError::from)?;
    let active = match state.session.settings().model {
        Some(c) => Some(c),
        None => store
            .resolve(None, &Catalog::builtin())
            .ok()
            .and_then(|path| installed.iter().find(|m| m.file == path).map(|m| m.id.clone())),
    };
    let loaded = state.session.loaded_model_name();
    let downloading: Vec<String> =
        state.session.running(DOWNLOAD_JOB).into_iter().map(|j| j[DOWNLOAD_JOB.len()..].to_string()).collect();
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
    let job = format!("{DOWNLOAD_JOB}{id}");
    let cancel = state.session.start_job(&job).ok_or_else(|| format!("{id} is already being downloaded"))?;
    let result = async {
        let policy = NetworkPolicy::default_location().map_err(CmdError::from)?;
        let (store, catalog, log) = (state.session.model_store(), Catalog::builtin(), ConnectionLog::default_location());
        let mut progress = |p: &PullProgress| {
            events::MODEL_DOWNLOAD_PROGRESS.emit(&app, p.clone());
        };
        download::pull(&store, &catalog, &id, &policy, &log, &PullOptions::default(), &mut progress, &cancel).await.map_err(CmdError::from)
    }
    .await;
    state.session.end_job(&job);
    result
}

/// Stops the download of `id`; what was downloaded is kept for a later resume.
#[tauri::command]
pub fn model_pull_cancel(state: State<'_, AppState>, id: String) {
    state.session.cancel(&format!("{DOWNLOAD_JOB}{id}"));
}

/// Deletes what an unfinished download of `id` left.
#[tauri::command]
pub fn model_discard_download(state: State<'_, AppState>, id: String) -> CmdResult<u64> {
    if state.session.is_running(&format!("{DOWNLOAD_JOB}{id}")) {
        return Err(format!("{id} is being downloaded; cancel it first").into());
    }
    let catalog = Catalog::builtin();
    let model = catalog.get(&id).ok_or_else(|| format!("no catalog model `{id}`"))?;
    state.session.model_store().discard_partial(&model.file_name).map_err(CmdError::from)
}

/// Imports a `.gguf` file, copied (or with `move_file`, moved) into the model folder, with
/// `model-import-progress` events.
#[tauri::command]
pub async fn model_import(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    path: PathBuf,
    move_file: Option<bool>,
) -> CmdResult<InstalledModel> {
    let file = path.display().to_string();
    let mode = if move_file == Some(true) { ImportMode::Move } else { ImportMode::Copy };
    let store = state.session.model_store();
    tauri::async_runtime::spawn_blocking(move || {
        store.import(&path, mode, &Catalog::builtin(), &mut |done, total| {
            events::MODEL_IMPORT_PROGRESS.emit(&app, ImportProgress { file: file.clone(), done, total });
        })
    })
    .await
    .map_err(message)?
    .map_err(CmdError::from)
}

/// Makes `id` the model for the next request (and the next run, in the app and the CLI);
/// the loaded one is let go.
#[tauri::command]
pub async fn model_select(app: tauri::AppHandle, state: State<'_, AppState>, id: String) -> CmdResult<()> {
    state.session.choose_model(Some(id)).await.map_err(CmdError::from)?;
    super::streams::model_unloaded(&app);
    Ok(())
}

/// Removes an installed model (a copied file is deleted; a linked file is left where it is)
/// and lets it go if it is loaded.
#[tauri::command]
pub async fn model_remove(app: tauri::AppHandle, state: State<'_, AppState>, id: String) -> CmdResult<InstalledModel> {
    let removed = state.session.model_store().remove(&id).map_err(CmdError::from)?;
    state.session.model_removed(&removed.id).await.map_err(CmdError::from)?;
    super::streams::model_unloaded(&app);
    Ok(removed)
}

/// The embedding models of search by meaning: installed, chosen, what each costs.
#[tauri::command]
pub async fn embedders_list(state: State<'_, AppState>) -> CmdResult<Vec<EmbedderChoice>> {
    Ok(state.session.embedders())
}

/// Makes `id` the embedding model of search by meaning (here and in later runs; loading it
/// takes a few seconds, off the UI thread), then embeds every open project's chunks with it
/// in the background (`embed-progress`, `embed-done`). Search stays lexical for a project
/// until its first vectors from the new model exist.
#[tauri::command]
pub async fn embedder_select(app: tauri::AppHandle, id: String) -> CmdResult<Vec<EmbedderChoice>> {
    let chooser = app.clone();
    tauri::async_runtime::spawn_blocking(move || chooser.state::<AppState>().session.choose_embedder(&id))
        .await
        .map_err(message)?
        .map_err(CmdError::from)?;
    let session = &app.state::<AppState>().session;
    for root in session.open_roots() {
        let app = app.clone();
        tauri::async_runtime::spawn_blocking(move || super::projects::embed(&app, &root));
    }
    Ok(session.embedders())
}
