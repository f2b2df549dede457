//! The company inference server, set up from the window: its URL (allowed in the network
//! policy), an optional model name, and its API key (kept in the OS keychain).

use perimeter_engine::inference::remote::{server_id, ServerSettings};
use perimeter_engine::network::{keychain, Mode, NetworkPolicy};
use serde::Serialize;
use tauri::State;

use super::{message, CmdResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct ServerStatus {
    url: Option<String>,
    model: Option<String>,
    has_key: bool,
}

#[tauri::command]
pub async fn server_settings() -> CmdResult<ServerStatus> {
    let s = ServerSettings::load().map_err(message)?;
    let has_key = match &s.url {
        Some(u) => keychain::api_key(&server_id(u).map_err(message)?).ok().flatten().is_some(),
        None => false,
    };
    Ok(ServerStatus { url: s.url, model: s.model, has_key })
}

/// Sends requests to `url` from now on: allows its host in the network policy (refused if an
/// administrator's policy does not allow it), stores `api_key` if given.
#[tauri::command]
pub async fn server_use(state: State<'_, AppState>, url: String, model: Option<String>, api_key: Option<String>) -> CmdResult<()> {
    let id = server_id(url.trim()).map_err(message)?;
    NetworkPolicy::default_location().and_then(|mut p| p.allow(&id)).map_err(message)?;
    if let Some(k) = api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        keychain::set_api_key(&id, k).map_err(message)?;
    }
    let model = model.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
    ServerSettings { url: Some(url.trim().to_string()), model }.save().map_err(message)?;
    *state.model.lock().await = None;
    Ok(())
}

/// Back to the model on this machine: the server's host leaves the allowlist, and the policy
/// goes back to offline when nothing else is allowed. The key stays in the keychain.
#[tauri::command]
pub async fn server_stop_using(state: State<'_, AppState>) -> CmdResult<()> {
    let settings = ServerSettings::load().map_err(message)?;
    if let Some(url) = &settings.url {
        let mut policy = NetworkPolicy::default_location().map_err(message)?;
        policy.disallow(&server_id(url).map_err(message)?).map_err(message)?;
        if policy.mode() == Mode::Allowlist && policy.user().allow.is_empty() {
            policy.go_offline().map_err(message)?;
        }
    }
    ServerSettings::default().save().map_err(message)?;
    *state.model.lock().await = None;
    Ok(())
}
