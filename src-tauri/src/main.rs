// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(e) = perimeter_engine::hardware::require_compiled_simd() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    perimeter_app_lib::run();
}
