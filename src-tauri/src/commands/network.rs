//! The network state the window shows at all times, and the connection log it can open.

use perimeter_engine::network::{ConnectionLog, ConnectionRecord, Mode, NetworkPolicy};
use serde::Serialize;

use super::{message, CmdResult};

#[derive(Serialize)]
pub struct NetworkStatus {
    mode: Mode,
    /// e.g. "Offline · nothing has left this machine".
    summary: String,
    allowed_hosts: Vec<String>,
    admin_files: Vec<String>,
    log: Vec<ConnectionRecord>,
    log_path: String,
}

#[tauri::command]
pub async fn network_status() -> CmdResult<NetworkStatus> {
    let policy = NetworkPolicy::default_location().map_err(message)?;
    let log = ConnectionLog::default_location();
    Ok(NetworkStatus {
        mode: policy.mode(),
        summary: format!("{} · {}", policy.summary(), log.summary().map_err(message)?),
        allowed_hosts: policy.allowed_hosts(),
        admin_files: policy.admin_files().iter().map(|p| p.display().to_string()).collect(),
        log: log.read().map_err(message)?,
        log_path: log.path().display().to_string(),
    })
}
