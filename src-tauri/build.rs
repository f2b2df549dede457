fn main() {
    // One `allow-<command>` permission per app command; capabilities grant them per window.
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(&["hardware_summary"])),
    )
    .expect("failed to run tauri-build");
}
