//! Chat view: questions answered from a project, the answer streamed over a `Channel`; Stop;
//! conversations listed, restored and deleted.

use std::path::PathBuf;

use perimeter_engine::assistant::{Conversation, ConversationSummary, RequestOptions};
use perimeter_engine::session::{Answered, ConversationChoice, Streams};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::streams::{model_events, text_sink};
use super::{CmdError, CmdResult};
use crate::state::AppState;

/// Answers `question` in conversation `conversation` (a new one when absent), streaming the
/// answer into `on_text`; `stop_generation(request)` ends it early.
#[tauri::command]
pub async fn ask(
    app: AppHandle,
    state: State<'_, AppState>,
    root: PathBuf,
    conversation: Option<String>,
    question: String,
    request: String,
    on_text: Channel<String>,
) -> CmdResult<Answered> {
    let choice = conversation.map_or(ConversationChoice::New, ConversationChoice::Id);
    let streams = Streams { model: &mut model_events(&app), text: &mut text_sink(&on_text) };
    let options = RequestOptions::for_questions();
    state.session.ask(&root, choice, &question, &options, &request, streams).await.map_err(CmdError::from)
}

/// Stops the generation `request` at its next token (what was produced is kept).
#[tauri::command]
pub fn stop_generation(state: State<'_, AppState>, request: String) {
    state.session.cancel(&request);
}

#[tauri::command]
pub async fn conversations_list(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<ConversationSummary>> {
    Ok(state.session.conversations(&root)?.list()?)
}

#[tauri::command]
pub async fn conversation_load(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<Conversation> {
    Ok(state.session.conversations(&root)?.load(&id)?)
}

#[tauri::command]
pub async fn conversation_delete(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<bool> {
    Ok(state.session.conversations(&root)?.delete(&id)?)
}
