//! Perimeter's desktop shell: Tauri commands that call `perimeter-engine`. Thin on purpose;
//! the desktop UI issue grows it into chat, diffs, projects and models.

mod commands;

pub fn run() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::hardware_summary])
        .run(tauri::generate_context!())
        .expect("error while running the Perimeter window");
}
