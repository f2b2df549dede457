//! Chat view: questions answered from a project, streamed as `chat-token` events; Stop;
//! conversations listed, restored and deleted.

use std::path::PathBuf;
use std::sync::Arc;

use perimeter_engine::assistant::{self, Conversation, ConversationSummary, Conversations, RequestOptions, Turn};
use perimeter_engine::inference::Model;
use perimeter_engine::session::ModelEvent;
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use super::{CmdError, CmdResult, TokenEvent};
use crate::state::AppState;

/// The model requests use, loading it on first use with `model-load` events (the window
/// shows the load instead of a silent wait).
pub async fn model(app: &AppHandle, state: &AppState) -> CmdResult<Arc<Model>> {
    let mut on_event = |e: ModelEvent| {
        let _ = app.emit("model-load", e);
    };
    state.session.model(&mut on_event).await.map_err(CmdError::from)
}

/// Tells the window the loaded model was let go (a switch of model or server).
pub fn model_unloaded(app: &AppHandle) {
    let _ = app.emit("model-load", ModelEvent::Unloaded);
}

#[derive(Serialize)]
pub struct AskResult {
    conversation: ConversationSummary,
    turn: Turn,
}

/// Answers `question` in conversation `conversation` (a new one when absent), streaming
/// `chat-token` events tagged with `request`; `stop_generation(request)` ends it early.
#[tauri::command]
pub async fn ask(
    app: AppHandle,
    state: State<'_, AppState>,
    root: PathBuf,
    conversation: Option<String>,
    question: String,
    request: String,
) -> CmdResult<AskResult> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    let store = Conversations::new(index.data_dir());
    let mut convo = match conversation {
        Some(id) => store.load(&id).map_err(CmdError::from)?,
        None => Conversation::new(),
    };
    let model = model(&app, &state).await?;
    let cancel = state.session.start_job(&request).ok_or_else(|| format!("request {request} is already running"))?;
    let mut sink = |text: &str| app.emit("chat-token", TokenEvent { request: &request, text }).is_ok();
    let result =
        assistant::ask(&model, &index, &mut convo, &question, &RequestOptions::for_questions(), &mut sink, &cancel).await;
    state.session.end_job(&request);
    let turn = result.map_err(CmdError::from)?;
    store.save(&convo).map_err(CmdError::from)?;
    Ok(AskResult { conversation: convo.summary(), turn })
}

/// Stops the generation `request` at its next token (what was produced is kept).
#[tauri::command]
pub fn stop_generation(state: State<'_, AppState>, request: String) {
    state.session.cancel(&request);
}

#[tauri::command]
pub async fn conversations_list(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<ConversationSummary>> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    Conversations::new(index.data_dir()).list().map_err(CmdError::from)
}

#[tauri::command]
pub async fn conversation_load(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<Conversation> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    Conversations::new(index.data_dir()).load(&id).map_err(CmdError::from)
}

#[tauri::command]
pub async fn conversation_delete(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<bool> {
    let index = state.session.project(&root).map_err(CmdError::from)?;
    Conversations::new(index.data_dir()).delete(&id).map_err(CmdError::from)
}
