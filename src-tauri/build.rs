fn main() {
    // One `allow-<command>` permission per app command; capabilities grant them per window.
    // The names are read from the one list of commands, `commands!` in src/lib.rs.
    println!("cargo:rerun-if-changed=src/lib.rs");
    let lib = std::fs::read_to_string("src/lib.rs").expect("src/lib.rs is readable");
    let commands = command_names(&lib);
    assert!(!commands.is_empty(), "no commands found in the `commands!` list of src/lib.rs");
    // tauri-build keeps the list for the rest of the build script (it wants `'static`).
    let commands: &'static [&'static str] =
        Box::leak(commands.into_iter().map(|c| &*Box::leak(c.into_boxed_str())).collect::<Vec<_>>().into_boxed_slice());
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(commands)))
        .expect("failed to run tauri-build");
}

/// The `module::name` lines of the `commands!` list, as names.
fn command_names(lib: &str) -> Vec<String> {
    let start = lib.find("commands!(@$what").expect("the `commands!` list in src/lib.rs");
    let list = &lib[start..];
    let list = &list[..list.find(')').expect("the list ends")];
    list.lines()
        .filter_map(|l| l.trim().strip_suffix(','))
        .filter_map(|l| l.split_once("::"))
        .filter(|(module, name)| [module, name].iter().all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')))
        .map(|(_, name)| name.to_string())
        .collect()
}
