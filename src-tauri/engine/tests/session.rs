//! The engine session as both hosts drive it, without a window or a terminal (the test host):
//! the model choice kept between runs, loading with events, the company server switch,
//! projects only by registration, one cancellation for every long job, and the requests
//! themselves: a question in a conversation, a change proposed, applied and undone. Needs the dev model
//! (`scripts/fetch-models.sh --all`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use perimeter_engine::assistant::RequestOptions;
use perimeter_engine::edit::{EditFormat, Selection};
use perimeter_engine::inference::{CancellationToken, StopReason};
use perimeter_engine::models::store::ImportMode;
use perimeter_engine::models::Catalog;
use perimeter_engine::network::NetworkPolicy;
use perimeter_engine::session::{ConversationChoice, EditRequest, ModelEvent, Overrides, Session, Streams};
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
    // Its index, conversations and proposals live in this session's data folder.
    assert!(project.index_dir.starts_with(dir.path()) && project.data_dir().starts_with(dir.path()), "{project:?}");
    assert_eq!(session.project_status(&project.root).map(|(_, watching)| watching), Some(false));

    session.remove_project(folder.path()).unwrap();
    assert!(session.project(folder.path()).is_err());
    assert!(!project.data_dir().exists(), "its data goes with it");
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

/// A session with the dev model chosen and a small project added.
async fn session_with_project() -> (tempfile::TempDir, tempfile::TempDir, Session) {
    let (dir, id) = data_dir_with_dev_model();
    let session = Session::at(dir.path(), Overrides::default()).unwrap();
    session.choose_model(Some(id)).await.unwrap();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("math.rs"), "/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n").unwrap();
    session.add_project(project.path()).unwrap();
    session.index_project(project.path(), &mut |_| {}).unwrap();
    (dir, project, session)
}

fn short(max_tokens: usize) -> RequestOptions {
    RequestOptions { max_tokens, ..RequestOptions::for_questions() }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_streams_its_answer_and_is_kept_in_its_conversation() {
    let (_dir, project, session) = session_with_project().await;
    let root = project.path();
    let (mut events, mut text) = (Vec::new(), String::new());
    let streams = Streams { model: &mut |e| events.push(e), text: &mut |t: &str| { text.push_str(t); true } };
    let first = session.ask(root, ConversationChoice::New, "What does add do?", &short(12), "q1", streams).await.unwrap();
    assert!(!first.turn.answer.is_empty() && text == first.turn.answer, "{text:?} vs {:?}", first.turn.answer);
    assert!(matches!(&events[..], [ModelEvent::Loading { .. }, ModelEvent::Loaded { .. }]), "{events:?}");
    assert!(first.turn.context.included.iter().any(|e| e.path == "math.rs"), "{:?}", first.turn.context);
    assert!(!session.is_running("q1"), "the job ends with the request");

    // --continue: the same conversation, one turn longer, and the model is not loaded again.
    let mut later = Vec::new();
    let streams = Streams { model: &mut |e| later.push(e), text: &mut |_: &str| true };
    let second = session.ask(root, ConversationChoice::Latest, "And its types?", &short(8), "q2", streams).await.unwrap();
    assert_eq!(second.conversation.id, first.conversation.id);
    assert!(later.is_empty(), "{later:?}");
    let kept = session.conversations(root).unwrap().load(&first.conversation.id).unwrap();
    assert_eq!(kept.turns.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_stopped_by_cancelling_its_job_and_keeps_what_it_had() {
    let (_dir, project, session) = session_with_project().await;
    let root = project.path();
    // The user presses Stop as the first piece of the answer arrives.
    let stopper = &session;
    let streams = Streams { model: &mut |_| {}, text: &mut |_: &str| { stopper.cancel("q"); true } };
    let answered = session.ask(root, ConversationChoice::New, "Explain add in detail.", &short(200), "q", streams).await.unwrap();
    assert_eq!(answered.turn.stop, StopReason::Cancelled);
    assert!(answered.turn.usage.completion_tokens < 10, "{:?}", answered.turn.usage);
    assert_eq!(session.conversations(root).unwrap().list().unwrap().len(), 1, "the partial answer is kept");

    // One request per id: a second request under a running id is refused.
    let _running = session.start_job("busy").unwrap();
    let streams = Streams { model: &mut |_| {}, text: &mut |_: &str| true };
    let Err(e) = session.ask(root, ConversationChoice::New, "Again?", &short(4), "busy", streams).await else { panic!("ran twice") };
    assert!(matches!(e, Error::JobRunning { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_is_proposed_applied_and_undone_through_the_session() {
    let (_dir, project, session) = session_with_project().await;
    let root = project.path();
    let file = root.join("math.rs");
    let before = std::fs::read(&file).unwrap();

    // A follow-up needs an earlier proposal.
    let follow_up = EditRequest {
        instruction: "The tests still fail.".into(),
        format: None,
        follow_up: true,
        options: RequestOptions { max_tokens: 16, ..RequestOptions::for_edits() },
    };
    let Err(e) = session.propose_edit(root, &follow_up, "e0", Streams { model: &mut |_| {}, text: &mut |_: &str| true }).await else {
        panic!("a follow-up with nothing to follow")
    };
    assert!(matches!(e, Error::NoProposal), "{e}");

    // The model's proposal is saved whatever it holds (the dev model cannot code).
    let request = EditRequest { follow_up: false, instruction: "Make add saturate on overflow.".into(), ..follow_up };
    let mut streamed = String::new();
    let streams = Streams { model: &mut |_| {}, text: &mut |t: &str| { streamed.push_str(t); true } };
    let proposal = session.propose_edit(root, &request, "e1", streams).await.unwrap();
    assert_eq!(proposal.answer, streamed);
    assert_eq!(session.proposals(root).unwrap().latest().unwrap().map(|p| p.id), Some(proposal.id));

    // An answer with a real change: applied (the latest proposal), recorded, undone exactly.
    let answer = "math.rs\n```rust\n/// Adds two numbers, saturating.\npub fn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```\n";
    let proposal = session.propose_from_answer(root, "Make add saturate.", answer.into(), "test", EditFormat::WholeFile).unwrap();
    assert_eq!(proposal.files.len(), 1, "{proposal:?}");
    let applied = session.apply(root, None, &Selection::All, false).unwrap();
    let change = applied.change.expect("applied");
    assert!(applied.held.is_empty() && change.proposal_id == proposal.id);
    assert!(std::fs::read_to_string(&file).unwrap().contains("saturating_add"));
    assert_eq!(session.history(root).unwrap().len(), 1);
    session.undo(root, None).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), before, "undo restores the exact bytes");

    // Applying against a file the user changed since is a conflict that writes nothing.
    std::fs::write(&file, "pub fn add() {}\n").unwrap();
    let Err(e) = session.apply(root, Some(&proposal.id), &Selection::All, false) else { panic!("applied over the user's edit") };
    assert!(matches!(e, Error::EditConflict { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn add() {}\n");
}
