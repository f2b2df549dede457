//! The company inference server, set up from the window: its URL (allowed in the network
//! policy), an optional model name, and its API key (kept in the OS keychain).

use perimeter_engine::inference::remote::server_id;
use perimeter_engine::network::keychain;
use serde::Serialize;
use tauri::{AppHandle, State};

use super::{CmdError, CmdResult};
use crate::state::AppState;

#[derive(Serialize, ts_rs::TS)]
pub struct ServerStatus {
    url: Option<String>,
    model: Option<String>,
    has_key: bool,
}

#[tauri::command]
pub async fn server_settings(state: State<'_, AppState>) -> CmdResult<ServerStatus> {
    let s = state.session.settings().server;
    let has_key = match &s.url {
        Some(u) => keychain::api_key(&server_id(u).map_err(CmdError::from)?).ok().flatten().is_some(),
        None => false,
    };
    Ok(ServerStatus { url: s.url, model: s.model, has_key })
}

/// Sends requests to `url` from now on: allows its host in the network policy (refused if an
/// administrator's policy does not allow it), stores `api_key` if given.
#[tauri::command]
pub async fn server_use(app: AppHandle, state: State<'_, AppState>, url: String, model: Option<String>, api_key: Option<String>) -> CmdResult<()> {
    state.session.use_server(&url, model, api_key.as_deref()).await.map_err(CmdError::from)?;
    super::streams::model_unloaded(&app);
    Ok(())
}

/// Back to the model on this machine: the server's host leaves the allowlist, and the policy
/// goes back to offline when nothing else is allowed. The key stays in the keychain.
#[tauri::command]
pub async fn server_stop_using(app: AppHandle, state: State<'_, AppState>) -> CmdResult<()> {
    state.session.stop_using_server().await.map_err(CmdError::from)?;
    super::streams::model_unloaded(&app);
    Ok(())
}
