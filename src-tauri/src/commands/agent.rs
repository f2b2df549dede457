//! Agent view: a task worked on by the session's agent, its steps streamed over a `Channel`;
//! a command waiting for the user's approval (asked over a second `Channel`, answered by
//! `agent_approve`); Stop; rewinding a run to before one of its steps.

use std::path::PathBuf;

use perimeter_engine::agent::{AgentEvent, AgentOptions, AgentReport, ApprovalMode, Decision};
use perimeter_engine::edit::AppliedChange;
use perimeter_engine::session::AgentStreams;
use tauri::ipc::Channel;
use tauri::{AppHandle, State};

use super::streams::model_events;
use super::{CmdError, CmdResult};
use crate::state::AppState;

/// Runs `task` on the project at `root` as job `request`. Each call and step goes to
/// `on_event`; a command that needs approval goes to `on_approval`, and the run waits for
/// `agent_approve(request, …)` (or Stop, which declines it).
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn agent_run(
    app: AppHandle,
    state: State<'_, AppState>,
    root: PathBuf,
    task: String,
    approval: ApprovalMode,
    request: String,
    on_event: Channel<AgentEvent>,
    on_approval: Channel<String>,
) -> CmdResult<AgentReport> {
    let approvals = &state.approvals;
    let mut ask = |command: &str| {
        let (answer, decision) = std::sync::mpsc::channel();
        approvals.lock().expect("approvals lock").insert(request.clone(), answer);
        if on_approval.send(command.to_string()).is_err() {
            return Decision::Deny;
        }
        // The run waits on the user (this worker is handed back to the runtime meanwhile); a
        // Stop drops the sender, which declines.
        let decision = tokio::task::block_in_place(|| decision.recv()).unwrap_or(Decision::Deny);
        approvals.lock().expect("approvals lock").remove(&request);
        decision
    };
    let options = AgentOptions { approval, ..AgentOptions::default() };
    let streams = AgentStreams {
        model: &mut model_events(&app),
        events: &mut |e| {
            let _ = on_event.send(e);
        },
        approve: &mut ask,
    };
    state.session.agent(&root, &task, &options, &request, streams).await.map_err(CmdError::from)
}

/// The user's answer to the command run `request` is waiting on.
#[tauri::command]
pub fn agent_approve(state: State<'_, AppState>, request: String, decision: Decision) {
    if let Some(answer) = state.approvals.lock().expect("approvals lock").remove(&request) {
        let _ = answer.send(decision);
    }
}

/// Stops run `request`: a waiting approval is declined, a generation or command is stopped.
#[tauri::command]
pub fn agent_stop(state: State<'_, AppState>, request: String) {
    state.approvals.lock().expect("approvals lock").remove(&request);
    state.session.cancel(&request);
}

/// Undoes the changes run `run` made from step `step` on; the files are back to their bytes
/// from before that step.
#[tauri::command]
pub async fn agent_rewind(state: State<'_, AppState>, root: PathBuf, run: String, step: usize) -> CmdResult<Vec<AppliedChange>> {
    Ok(state.session.rewind_agent(&root, &run, step)?)
}
