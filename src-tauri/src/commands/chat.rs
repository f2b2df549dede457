//! Chat view: questions answered from a project, streamed as `chat-token` events; Stop;
//! conversations listed, restored and deleted.

use std::path::PathBuf;
use std::sync::Arc;

use perimeter_engine::assistant::{self, Conversation, ConversationSummary, Conversations, RequestOptions, Turn};
use perimeter_engine::inference::remote::{server_id, ServerSettings};
use perimeter_engine::inference::{LoadOptions, LocalModel, Model, RemoteModel, RemoteOptions};
use perimeter_engine::network::{keychain, ConnectionLog, NetworkPolicy};
use perimeter_engine::models::{Catalog, ModelStore};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use super::{message, CmdResult, TokenEvent};
use crate::state::AppState;

/// The model requests use, loading it (off the UI thread) on first use.
pub async fn model(app: &AppHandle, state: &AppState) -> CmdResult<Arc<Model>> {
    let mut slot = state.model.lock().await;
    if let Some(m) = slot.as_ref() {
        return Ok(m.clone());
    }
    let server = ServerSettings::load().map_err(message)?;
    if let Some(url) = server.url {
        let _ = app.emit("model-loading", url.clone());
        let id = server_id(&url).map_err(message)?;
        let options = RemoteOptions {
            model: server.model,
            // No readable keychain is not fatal: the server may need no key (a 401 says so).
            api_key: keychain::api_key(&id).ok().flatten(),
            ..RemoteOptions::new(&url)
        };
        let policy = NetworkPolicy::default_location().map_err(message)?;
        let remote = RemoteModel::connect(options, policy, ConnectionLog::default_location()).await.map_err(message)?;
        let m = Arc::new(Model::Remote(remote));
        let _ = app.emit("model-loaded", m.name());
        *slot = Some(m.clone());
        return Ok(m);
    }
    let choice = state.model_choice.lock().expect("choice lock").clone();
    let path = ModelStore::default_location().resolve(choice.as_deref(), &Catalog::builtin()).map_err(message)?;
    let _ = app.emit("model-loading", path.display().to_string());
    let m = Arc::new(Model::Local(LocalModel::load(&path, &LoadOptions::default()).await.map_err(message)?));
    let _ = app.emit("model-loaded", m.name());
    *slot = Some(m.clone());
    Ok(m)
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
    let index = state.project(&root)?;
    let store = Conversations::new(index.data_dir());
    let mut convo = match conversation {
        Some(id) => store.load(&id).map_err(message)?,
        None => Conversation::new(),
    };
    let model = model(&app, &state).await?;
    let cancel = state.start_generation(&request);
    let mut sink = |text: &str| app.emit("chat-token", TokenEvent { request: &request, text }).is_ok();
    let result =
        assistant::ask(&model, &index, &mut convo, &question, &RequestOptions::for_questions(), &mut sink, &cancel).await;
    state.end_generation(&request);
    let turn = result.map_err(message)?;
    store.save(&convo).map_err(message)?;
    Ok(AskResult { conversation: convo.summary(), turn })
}

/// Stops the generation `request` at its next token (what was produced is kept).
#[tauri::command]
pub fn stop_generation(state: State<'_, AppState>, request: String) {
    if let Some(token) = state.generations.lock().expect("generations lock").get(&request) {
        token.cancel();
    }
}

#[tauri::command]
pub async fn conversations_list(state: State<'_, AppState>, root: PathBuf) -> CmdResult<Vec<ConversationSummary>> {
    let index = state.project(&root)?;
    Conversations::new(index.data_dir()).list().map_err(message)
}

#[tauri::command]
pub async fn conversation_load(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<Conversation> {
    let index = state.project(&root)?;
    Conversations::new(index.data_dir()).load(&id).map_err(message)
}

#[tauri::command]
pub async fn conversation_delete(state: State<'_, AppState>, root: PathBuf, id: String) -> CmdResult<bool> {
    let index = state.project(&root)?;
    Conversations::new(index.data_dir()).delete(&id).map_err(message)
}
