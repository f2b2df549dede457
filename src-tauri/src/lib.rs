//! Perimeter's desktop shell: Tauri commands that call `perimeter-engine` and stream its
//! results (tokens, index progress, watcher updates) to the UI as events. Thin on purpose:
//! every decision lives in the engine.

mod commands;
mod events;
mod navigation;
mod state;

use tauri::Manager;

/// The commands the window may call, written once: `commands!(handler)` is Tauri's invoke
/// handler, `commands!(names)` their names for the generated TypeScript `Command` type.
macro_rules! commands {
    ($what:ident) => {
        commands!(@$what
            models::hardware_summary,
            models::models_list,
            models::model_import,
            models::model_select,
            models::embedders_list,
            models::embedder_select,
            models::model_remove,
            models::model_pull,
            models::model_pull_cancel,
            models::model_discard_download,
            projects::projects_list,
            projects::project_add,
            projects::project_remove,
            projects::read_file,
            chat::ask,
            chat::stop_generation,
            chat::conversations_list,
            chat::conversation_load,
            chat::conversation_delete,
            edits::propose_edit,
            edits::proposals_list,
            edits::proposal_load,
            edits::proposal_apply,
            edits::undo,
            edits::history,
            agent::agent_run,
            agent::agent_approve,
            agent::agent_stop,
            agent::agent_rewind,
            network::network_status,
            network::network_allow,
            network::network_disallow,
            network::network_offline,
            server::server_settings,
            server::server_use,
            server::server_stop_using,
        )
    };
    (@handler $($module:ident::$name:ident),* $(,)?) => {
        tauri::generate_handler![$(commands::$module::$name),*]
    };
    (@names $($module:ident::$name:ident),* $(,)?) => {
        [$(stringify!($name)),*]
    };
}

// After the macro: it is in scope only below its definition.
#[cfg(test)]
mod bindings;

pub fn run() {
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(navigation::guard())
        .manage(state::AppState::default())
        .invoke_handler(commands!(handler))
        .build(tauri::generate_context!())
        .expect("error while building the Perimeter window");
    app.run(|handle, event| {
        // Closing the window mid-generation or mid-indexing: stop generations and watchers
        // so the process exits promptly instead of finishing work nobody will see.
        if let tauri::RunEvent::ExitRequested { .. } | tauri::RunEvent::Exit = event {
            handle.state::<state::AppState>().session.shut_down();
        }
    });
}
