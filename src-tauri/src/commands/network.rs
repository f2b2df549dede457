//! The network state the window shows at all times, and the connection log it can open.

use perimeter_engine::network::{ConnectionLog, ConnectionRecord, Mode, NetworkPolicy};
use serde::Serialize;

use super::{CmdError, CmdResult};

#[derive(Serialize, ts_rs::TS)]
pub struct NetworkStatus {
    mode: Mode,
    /// e.g. "Offline · nothing has left this machine".
    summary: String,
    allowed_hosts: Vec<String>,
    /// The user's own list, kept while offline (what the settings edit).
    user_hosts: Vec<String>,
    admin_files: Vec<String>,
    log: Vec<ConnectionRecord>,
    log_path: String,
}

#[tauri::command]
pub async fn network_status() -> CmdResult<NetworkStatus> {
    status_of(&NetworkPolicy::default_location().map_err(CmdError::from)?)
}

/// What the window shows of `policy` and the connection log.
fn status_of(policy: &NetworkPolicy) -> CmdResult<NetworkStatus> {
    let log = ConnectionLog::default_location();
    Ok(NetworkStatus {
        mode: policy.mode(),
        summary: format!("{} · {}", policy.summary(), log.summary().map_err(CmdError::from)?),
        allowed_hosts: policy.allowed_hosts(),
        user_hosts: policy.user().allow.clone(),
        admin_files: policy.admin_files().iter().map(|p| p.display().to_string()).collect(),
        log: log.read().map_err(CmdError::from)?,
        log_path: log.path().display().to_string(),
    })
}

/// Changes the policy file through the engine, which holds its lock from read to write (two
/// quick clicks run these commands concurrently), and returns the status it leaves.
fn change_policy<T>(change: impl FnOnce(&mut NetworkPolicy) -> perimeter_engine::Result<T>) -> CmdResult<NetworkStatus> {
    let (policy, _) = NetworkPolicy::change_default_location(change).map_err(CmdError::from)?;
    status_of(&policy)
}

/// Allows `host` (host, host:port or *.domain) and switches to the allowlist; refused when an
/// administrator's policy does not allow it.
#[tauri::command]
pub async fn network_allow(host: String) -> CmdResult<NetworkStatus> {
    change_policy(|p| p.allow(&host))
}

#[tauri::command]
pub async fn network_disallow(host: String) -> CmdResult<NetworkStatus> {
    change_policy(|p| Ok(p.disallow(&host)))
}

/// Back to offline (the allowlist is kept for later).
#[tauri::command]
pub async fn network_offline() -> CmdResult<NetworkStatus> {
    change_policy(|p| Ok(p.go_offline()))
}
