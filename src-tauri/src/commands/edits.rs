//! Diff review: proposals made, listed, opened, applied whole or by hunk; undo and history.

use std::path::PathBuf;

use perimeter_engine::assistant::{self, RequestOptions};
use perimeter_engine::edit::{self, AppliedChange, Proposal, Proposals, Selection};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use super::{CmdError, CmdResult, TokenEvent};
use crate::state::AppState;

/// Asks the model for the change `instruction` describes; the answer streams as
/// `edit-token` events and the saved proposal is returned.
#[tauri::command]
pub async fn propose_edit(
    app: AppHandle,
    state: State<'_, AppState>,
    root: PathBuf,
    instruction: String,
    request: String,
) -> CmdResult<Proposal> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    let model = super::chat::model(&app, &state).await?;
    let cancel = state.session.start_job(&request).ok_or_else(|| format!("request {request} is already running"))?;
    let mut sink = |text: &str| app.emit("edit-token", TokenEvent { request: &request, text }).is_ok();
    let result =
        assistant::propose_edit(&model, &index, &[], &instruction, None, &RequestOptions::for_edits(), &mut sink, &cancel).await;
    state.session.end_job(&request);
    let proposal = result.map_err(CmdError::from)?;
    Proposals::new(index.data_dir()).save(&proposal).map_err(CmdError::from)?;
    Ok(proposal)
}

#[derive(Serialize)]
pub struct ProposalSummary {
    id: String,
    instruction: String,
    created_at: u64,
    files: usize,
    problems: usize,
}

#[tauri::command]
pub async fn proposals_list(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<ProposalSummary>> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    let all = Proposals::new(index.data_dir()).list().map_err(CmdError::from)?;
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
    let index = state.session.project(&root).map_err(CmdError::from)?;
    Proposals::new(index.data_dir()).load(&id).map_err(CmdError::from)
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
) -> CmdResult<AppliedChange> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    let p = Proposals::new(index.data_dir()).load(&id).map_err(CmdError::from)?;
    let selection = hunks.map_or(Selection::All, Selection::Hunks);
    let history = edit::history(index.data_dir());
    edit::apply(index.root(), &history, &p.id, &p.instruction, &p.files, &selection, confirm.unwrap_or(false)).map_err(CmdError::from)
}

#[tauri::command]
pub async fn undo(state: State<'_, AppState>, root: PathBuf, id: Option<String>) -> CmdResult<AppliedChange> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    edit::undo(index.root(), &edit::history(index.data_dir()), id.as_deref()).map_err(CmdError::from)
}

#[tauri::command]
pub async fn history(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<AppliedChange>> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    edit::history(index.data_dir()).list().map_err(CmdError::from)
}
