//! Diff review: proposals made, listed, opened, applied whole or by hunk; undo and history.

use std::path::PathBuf;

use perimeter_engine::assistant::RequestOptions;
use perimeter_engine::edit::{Applied, AppliedChange, Proposal, Selection};
use perimeter_engine::session::{EditRequest, Streams};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::streams::{model_events, text_sink};
use super::{CmdError, CmdResult};
use crate::state::AppState;

/// Asks the model for the change `instruction` describes; the answer streams into
/// `on_text` and the saved proposal is returned.
#[tauri::command]
pub async fn propose_edit(
    app: AppHandle,
    state: State<'_, AppState>,
    root: PathBuf,
    instruction: String,
    request: String,
    on_text: Channel<String>,
) -> CmdResult<Proposal> {
    let edit = EditRequest { instruction, format: None, follow_up: false, options: RequestOptions::for_edits() };
    let streams = Streams { model: &mut model_events(&app), text: &mut text_sink(&on_text) };
    state.session.propose_edit(&root, &edit, &request, streams).await.map_err(CmdError::from)
}

#[derive(Serialize, ts_rs::TS)]
pub struct ProposalSummary {
    id: String,
    instruction: String,
    created_at: u64,
    files: usize,
    problems: usize,
}

#[tauri::command]
pub async fn proposals_list(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<ProposalSummary>> {
    let all = state.session.proposals(&root)?.list()?;
    Ok(all
        .into_iter()
        .map(|p| ProposalSummary {
            files: p.files.len(),
            problems: p.problems.len(),
            id: p.id,
            instruction: p.instruction,
            created_at: p.created_at,
        })
        .collect())
}

#[tauri::command]
pub async fn proposal_load(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<Proposal> {
    Ok(state.session.proposals(&root)?.load(&id)?)
}

/// Applies the chosen hunks of proposal `id`; a file changed since is a conflict, in words.
/// A held change among them is written only with `confirm` (the user clicked Confirm).
#[tauri::command]
pub async fn proposal_apply(
    state: State<'_, AppState>,
    root: PathBuf,
    id: String,
    hunks: Option<Vec<usize>>,
    confirm: Option<bool>,
) -> CmdResult<Applied> {
    let selection = hunks.map_or(Selection::All, Selection::Hunks);
    Ok(state.session.apply(&root, Some(&id), &selection, confirm.unwrap_or(false))?)
}

#[tauri::command]
pub async fn undo(state: State<'_, AppState>, root: PathBuf, id: Option<String>) -> CmdResult<AppliedChange> {
    Ok(state.session.undo(&root, id.as_deref())?)
}

#[tauri::command]
pub async fn history(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<AppliedChange>> {
    Ok(state.session.history(&root)?)
}
