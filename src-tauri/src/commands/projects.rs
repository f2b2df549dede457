//! Projects view: add (index with progress, then watch), list, remove; the file viewer.

use std::path::PathBuf;
use std::time::Instant;

use perimeter_engine::edit::target::checked_target;
use perimeter_engine::index::watch;
use perimeter_engine::projects::Project;
use serde::Serialize;
use tauri::{AppHandle, Manager, State};

use super::{CmdError, CmdResult};
use crate::events::{self, EmbedDone, EmbedEvent, IndexDone, IndexEvent, IndexUpdated};
use crate::state::AppState;

#[derive(Serialize, ts_rs::TS)]
pub struct ProjectStatus {
    #[serde(flatten)]
    project: Project,
    files: Option<usize>,
    watching: bool,
}

#[tauri::command]
pub async fn projects_list(state: State<'_, AppState>) -> CmdResult<Vec<ProjectStatus>> {
    let all = state.session.project_list().list().map_err(CmdError::from)?;
    Ok(all
        .into_iter()
        .map(|project| {
            let (files, watching) = state.session.project_status(&project.root).unwrap_or((None, false));
            ProjectStatus { files, watching, project }
        })
        .collect())
}

/// Adds a folder (dropped on the window or chosen in the dialog) and indexes it in the
/// background: `index-progress` events, then `index-done`, then `index-updated` whenever the
/// watcher re-indexes changed files.
#[tauri::command]
pub async fn project_add(app: AppHandle, state: State<'_, AppState>, path: PathBuf) -> CmdResult<Project> {
    let (project, index) = state.session.add_project(&path).map_err(CmdError::from)?;
    // Already indexed and watched in this session: the watcher keeps it fresh.
    if state.session.project_status(&project.root).is_some_and(|(_, watching)| watching) {
        return Ok(project);
    }
    let root = project.root.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let started = Instant::now();
        let mut last_emit = Instant::now() - std::time::Duration::from_secs(1);
        // A session job: closing the window (or removing the project) stops it.
        let result = app.state::<AppState>().session.index_project(&root, &mut |p| {
            // The UI needs a few updates a second, not one per file.
            if last_emit.elapsed().as_millis() >= 100 || p.files_done == p.files_total {
                last_emit = Instant::now();
                let mb_per_s = p.bytes_done as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-3);
                events::INDEX_PROGRESS.emit(&app, IndexEvent { root: root.clone(), progress: p.clone(), mb_per_s });
            }
        });
        if let Err(perimeter_engine::Error::JobRunning { .. }) = result {
            return; // already indexing; its events will come
        }
        let (summary, error) = match result {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.message_for(perimeter_engine::Host::Window))),
        };
        // Watch before announcing: the UI refreshes on `index-done` and must see "watching".
        let error = match error {
            None => start_watching(&app, &root, index).err(),
            e => e,
        };
        let indexed = error.is_none();
        events::INDEX_DONE.emit(&app, IndexDone { root: root.clone(), summary, error });
        if indexed {
            embed(&app, &root);
        }
    });
    Ok(project)
}

/// Embeds the project's chunks that have no vector yet, if an embedding model is installed:
/// `embed-progress` events, then `embed-done`. Search works (lexically) all along.
pub(super) fn embed(app: &AppHandle, root: &std::path::Path) {
    let mut last_emit = Instant::now() - std::time::Duration::from_secs(1);
    let result = app.state::<AppState>().session.embed_project(root, &mut |p| {
        if last_emit.elapsed().as_millis() >= 250 || p.chunks_done == p.chunks_total {
            last_emit = Instant::now();
            events::EMBED_PROGRESS.emit(app, EmbedEvent { root: root.to_path_buf(), progress: p.clone() });
        }
    });
    let (summary, error) = match result {
        Ok(None) | Err(perimeter_engine::Error::JobRunning { .. }) => return,
        Ok(Some(s)) => (Some(s), None),
        Err(e) => (None, Some(e.message_for(perimeter_engine::Host::Window))),
    };
    let embedded = error.is_none();
    events::EMBED_DONE.emit(app, EmbedDone { root: root.to_path_buf(), summary, error });
    if embedded {
        // The search table, now rather than at the next question (seconds on a large project).
        let _ = app.state::<AppState>().session.warm_search(root);
    }
}

fn start_watching(
    app: &AppHandle,
    root: &std::path::Path,
    index: std::sync::Arc<perimeter_engine::index::ProjectIndex>,
) -> Result<(), String> {
    let window = app.clone();
    let event_root = root.to_path_buf();
    let counted = index.clone();
    let watcher = watch::watch(index, move |result, paths| {
        let (files, error) = match result {
            Ok(_) => (counted.file_count().ok(), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let updated = error.is_none();
        let paths = paths.iter().cloned().collect();
        events::INDEX_UPDATED.emit(&window, IndexUpdated { root: event_root.clone(), paths, files, error });
        if updated {
            // Changed files' chunks only: the others keep their vectors.
            embed(&window, &event_root);
        }
    });
    let watcher = watcher.map_err(|e| format!("Indexed, but changes will not be picked up until restart: {e}"))?;
    // The project may have been removed while it was indexing: then the watcher is dropped.
    app.state::<AppState>().session.set_watcher(root, watcher);
    Ok(())
}

/// Removes a project and its index (never the folder itself).
#[tauri::command]
pub async fn project_remove(state: State<'_, AppState>, root: PathBuf) -> CmdResult<()> {
    state.session.remove_project(&root).map_err(CmdError::from)?;
    Ok(())
}

/// A project file's text for the viewer. The path must stay inside the project.
#[tauri::command]
pub async fn read_file(state: State<'_, AppState>, root: PathBuf, path: String) -> CmdResult<String> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    let full = checked_target(index.root(), &path).map_err(CmdError::from)?;
    let bytes = std::fs::read(&full).map_err(|e| format!("{path}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| CmdError { kind: "not_utf8", message: format!("{path} is not UTF-8 text, so it cannot be shown") })
}
