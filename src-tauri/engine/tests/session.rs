//! The engine session as both hosts drive it, without a window or a terminal: the model
//! choice kept between runs, loading with events, the company server switch, projects only
//! by registration, and one cancellation for every long job. Needs the dev model
//! (`scripts/fetch-models.sh --all`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use perimeter_engine::inference::CancellationToken;
use perimeter_engine::models::store::ImportMode;
use perimeter_engine::models::Catalog;
use perimeter_engine::network::NetworkPolicy;
use perimeter_engine::session::{ModelEvent, Overrides, Session};
use perimeter_engine::Error;

/// The network policy and index folders follow the process's data folder; every test here
/// shares one, while each session gets its own settings and model folder.
fn global_data_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("PERIMETER_DATA_DIR", dir.path());
        // The keychain is never asked (a CI machine may have none).
        std::env::set_var("PERIMETER_API_KEY", "test-key");
        dir
    })
    .path()
}

fn dev_model() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/local/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh --all", path.display());
    path
}

/// A data folder with the dev model installed (linked, not copied); returns its id.
fn data_dir_with_dev_model() -> (tempfile::TempDir, String) {
    global_data_dir();
    let dir = tempfile::tempdir().unwrap();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    let installed = session.model_store().import(&dev_model(), ImportMode::Link, &Catalog::builtin(), &mut |_, _| {}).unwrap();
    (dir, installed.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chosen_model_is_kept_for_the_next_run_and_its_load_is_told() {
    let (dir, id) = data_dir_with_dev_model();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    session.choose_model(Some(id.clone())).await.unwrap();

    // A later run (the CLI after the app, or the app restarted) uses the same choice.
    let next = Session::at(dir.path(), Overrides::default()).unwrap();
    assert_eq!(next.settings().model.as_deref(), Some(id.as_str()));
    let mut events = Vec::new();
    let model = next.model(&mut |e| events.push(e)).await.unwrap();
    assert!(matches!(&events[..], [ModelEvent::Loading { source }, ModelEvent::Loaded { .. }] if source.ends_with(".gguf")), "{events:?}");
    assert_eq!(next.loaded_model_name(), Some(model.name()));

    // Loaded once: the next request gets the same model and no events.
    let mut again = Vec::new();
    let same = next.model(&mut |e| again.push(e)).await.unwrap();
    assert!(Arc::ptr_eq(&model, &same) && again.is_empty());

    // A name that is not installed is refused and changes nothing.
    let e = next.choose_model(Some("no-such-model".into())).await.unwrap_err();
    assert!(matches!(e, Error::UnknownModel { .. }), "{e}");
    assert_eq!(next.settings().model.as_deref(), Some(id.as_str()));

    // Removing the chosen model forgets the choice and lets the loaded one go.
    next.model_removed(&id).await.unwrap();
    assert_eq!(next.settings().model, None);
    assert_eq!(next.loaded_model_name(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hosts_flag_wins_for_its_run_only() {
    let (dir, id) = data_dir_with_dev_model();
    Session::at(dir.path(), Overrides::default()).unwrap().choose_model(Some(id)).await.unwrap();
    let file = dir.path().join("elsewhere.gguf");
    std::fs::copy(dev_model(), &file).unwrap();
    let flagged = Session::at(dir.path(), Overrides { model: Some(file.display().to_string()), ..Overrides::default() }).unwrap();
    assert_eq!(flagged.model_file().unwrap(), file);
    let plain = Session::at(dir.path(), Overrides::default()).unwrap();
    let chosen = plain.model_file().unwrap();
    assert!(chosen != file && chosen.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"), "{}", chosen.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_switch_is_kept_and_requests_go_to_the_server_until_switched_back() {
    let (dir, _) = data_dir_with_dev_model();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    // Nothing listens on port 9 (discard): connecting fails, which proves the request went
    // to the server and not to the installed model.
    session.use_server(" http://127.0.0.1:9 ", Some("coder".into()), None).await.unwrap();
    let next = Session::at(dir.path(), Overrides::default()).unwrap();
    assert_eq!(next.settings().server.url.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(next.settings().server.model.as_deref(), Some("coder"));
    let mut events = Vec::new();
    let Err(e) = next.model(&mut |e| events.push(e)).await else { panic!("the server at port 9 answered") };
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    assert!(matches!(&events[..], [ModelEvent::Loading { source }, ModelEvent::Failed { .. }] if source == "http://127.0.0.1:9"), "{events:?}");

    // A host's --model still means the model on this machine, for its run.
    let flagged = Session::at(dir.path(), Overrides { model: Some(dev_model().display().to_string()), ..Overrides::default() }).unwrap();
    let mut local = Vec::new();
    flagged.model(&mut |e| local.push(e)).await.unwrap();
    assert!(matches!(&local[0], ModelEvent::Loading { source } if source.ends_with(".gguf")), "{local:?}");

    // Switching servers leaves only the new one allowed; back to local, none.
    let allowed = || NetworkPolicy::default_location().unwrap().allowed_hosts();
    next.use_server("http://127.0.0.1:10", None, None).await.unwrap();
    assert!(allowed().iter().any(|h| h.contains("127.0.0.1:10")) && !allowed().iter().any(|h| h.ends_with(":9")), "{:?}", allowed());
    next.stop_using_server().await.unwrap();
    assert_eq!(next.settings().server.url, None);
    assert!(allowed().is_empty(), "{:?}", allowed());
    let model = next.model(&mut |_| {}).await.unwrap();
    assert!(model.name().to_lowercase().contains("smollm"), "{}", model.name());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_added_projects_open_and_each_opens_once() {
    let (dir, _) = data_dir_with_dev_model();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("main.rs"), "fn main() {}\n").unwrap();

    let Err(e) = session.project(folder.path()) else { panic!("an unadded folder opened") };
    assert!(matches!(e, Error::NotAProject { .. }), "{e}");
    let (project, index) = session.add_project(folder.path()).unwrap();
    assert!(Arc::ptr_eq(&index, &session.project(folder.path()).unwrap()));
    assert_eq!(session.project_status(&project.root).map(|(_, watching)| watching), Some(false));

    session.remove_project(folder.path()).unwrap();
    assert!(session.project(folder.path()).is_err());
    assert!(folder.path().join("main.rs").is_file(), "the folder itself is never touched");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_cancellation_for_every_job_and_closing_stops_them_all() {
    let (dir, _) = data_dir_with_dev_model();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    let generation = session.start_job("request-1").unwrap();
    assert!(session.start_job("request-1").is_none(), "one id runs once");
    let download = session.start_job("download:qwen").unwrap();
    assert_eq!(session.running("download:"), ["download:qwen"]);

    assert!(session.cancel("request-1") && generation.is_cancelled() && !download.is_cancelled());
    session.end_job("request-1");
    assert!(!session.cancel("request-1"), "an ended job cannot be cancelled");

    // Indexing stops at its next file when its job is cancelled (the first indexing of a
    // project when the window closes).
    let folder = tempfile::tempdir().unwrap();
    for i in 0..50 {
        std::fs::write(folder.path().join(format!("f{i}.rs")), format!("fn f{i}() {{}}\n")).unwrap();
    }
    let (_, index) = session.add_project(folder.path()).unwrap();
    let indexing: CancellationToken = session.start_job("index").unwrap();
    session.shut_down();
    assert!(download.is_cancelled() && indexing.is_cancelled());
    let summary = index.update(&mut |_| {}, &indexing).unwrap();
    assert!(summary.cancelled && summary.files_indexed == 0, "{summary:?}");
}
