fn main() {
    // One `allow-<command>` permission per app command; capabilities grant them per window.
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(&[
                "hardware_summary",
                "models_list",
                "model_import",
                "model_select",
                "model_remove",
                "projects_list",
                "project_add",
                "project_remove",
                "read_file",
                "ask",
                "stop_generation",
                "conversations_list",
                "conversation_load",
                "conversation_delete",
                "propose_edit",
                "proposals_list",
                "proposal_load",
                "proposal_apply",
                "undo",
                "history",
                "network_status",
                "network_allow",
                "network_disallow",
                "network_offline",
                "server_settings",
                "server_use",
                "server_stop_using",
            ])),
    )
    .expect("failed to run tauri-build");
}
