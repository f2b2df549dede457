//! One engine session: what the desktop app and the CLI hold while they run. It owns the
//! user's [`Settings`] (model and company server, persisted), the loaded model, the open
//! projects, and the cancellation token of every long job, so both hosts choose, load and
//! cancel the same way and only present the results differently.

mod agent;
mod embedders;
mod requests;
mod settings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use agent::AgentStreams;
pub use embedders::EmbedderChoice;
pub use requests::{Answered, ConversationChoice, EditRequest, Streams};
pub use settings::{ServerSettings, Settings};

use crate::error::{Error, Result};
use crate::index::watch::Watcher;
use crate::embed::Embedder;
use crate::index::{
    EmbedProgress, EmbedSummary, IndexProgress, IndexSummary, ProjectIndex, SearchMode, SearchOptions, SearchResults,
};
use crate::inference::remote::server_id;
use crate::inference::{LoadOptions, LocalModel, Model, RemoteModel, RemoteOptions};
use crate::CancellationToken;
use crate::models::{Catalog, ModelStore};
use crate::network::{keychain, ConnectionLog, Mode, NetworkPolicy};
use crate::projects::{Project, Projects};

/// What a host's own flags say for this run only (the CLI's `--model`, `--server`, `--dtype`);
/// never written to the settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// A model id or `.gguf` path for this run.
    pub model: Option<String>,
    /// A company server for this run.
    pub server: Option<ServerSettings>,
    /// How to load the local model.
    pub load: LoadOptions,
    /// Longest wait for the company server; 60 s when `None`.
    pub server_timeout: Option<Duration>,
}

/// Model loading as the hosts show it: a load takes seconds (17 s for a 1.5B model on a
/// laptop CPU), so the first request must not look hung.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ModelEvent {
    /// A model is being loaded or reached.
    Loading {
        /// The model file, or the server's URL.
        source: String,
    },
    /// It is ready.
    Loaded {
        /// The model's name.
        name: String,
        /// How long the load took.
        seconds: f64,
        /// Where it runs ([`Model::backend`]): "CPU", the GPU, or the CPU and why not the GPU.
        backend: String,
        /// When the model did not fit on the GPU ([`Model::placement_note`]): what runs on the
        /// CPU, and what to do about it.
        note: Option<String>,
    },
    /// The load failed; the request returns the error itself.
    Failed {
        /// Why, in words.
        reason: String,
    },
    /// The choice changed and the loaded model was let go; the next request loads again.
    Unloaded,
}

/// A project the session has open: its index, and its watcher once the host started one.
struct OpenProject {
    project: Project,
    index: Arc<ProjectIndex>,
    watcher: Option<Watcher>,
}

/// What a host holds while it runs: settings, the loaded model, the open projects and the
/// running jobs. Shared behind an `Arc`; every method takes `&self`.
pub struct Session {
    data_dir: PathBuf,
    overrides: Overrides,
    settings: Mutex<Settings>,
    /// The loaded model; loaded on first use, let go when the choice changes.
    model: tokio::sync::Mutex<Option<Arc<Model>>>,
    projects: Mutex<HashMap<PathBuf, OpenProject>>,
    /// Long jobs in flight (generations, downloads, indexing), by the id the host gave them.
    jobs: Mutex<HashMap<String, CancellationToken>>,
    /// The chosen embedding model by id once loaded, or why it cannot be used.
    embedder: Mutex<Option<(String, std::result::Result<Arc<Embedder>, String>)>>,
}

impl Session {
    /// The session over the app's data folder ([`crate::paths::data_dir`]).
    pub fn open(overrides: Overrides) -> Result<Session> {
        Session::at(&crate::paths::data_dir(), overrides)
    }

    /// As [`Session::open`], but a settings file that cannot be read is moved aside (kept as
    /// `settings.toml.unreadable`) and the defaults used: a window must open either way. The
    /// message says what happened.
    pub fn open_or_recover(overrides: Overrides) -> (Session, Option<String>) {
        let data_dir = crate::paths::data_dir();
        match Session::at(&data_dir, overrides.clone()) {
            Ok(session) => (session, None),
            Err(e) => {
                let path = Settings::path(&data_dir);
                let aside = path.with_extension("toml.unreadable");
                let moved = std::fs::rename(&path, &aside).is_ok();
                let session = Session::empty(&data_dir, overrides);
                let note = if moved { format!("{e}; it was moved to {} and the defaults are used", aside.display()) } else { e.to_string() };
                (session, Some(note))
            }
        }
    }

    fn empty(data_dir: &Path, overrides: Overrides) -> Session {
        Session {
            data_dir: data_dir.to_path_buf(),
            overrides,
            settings: Mutex::new(Settings::default()),
            model: tokio::sync::Mutex::new(None),
            projects: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            embedder: Mutex::new(None),
        }
    }

    /// The session kept in `data_dir` (its settings, models and projects), with a host's
    /// `overrides` for this run.
    pub fn at(data_dir: &Path, overrides: Overrides) -> Result<Session> {
        Ok(Session { settings: Mutex::new(Settings::load(data_dir)?), ..Session::empty(data_dir, overrides) })
    }

    /// The saved settings (not the overrides).
    pub fn settings(&self) -> Settings {
        self.settings.lock().expect("settings lock").clone()
    }

    /// The installed models.
    pub fn model_store(&self) -> ModelStore {
        ModelStore::new(self.data_dir.join("models"))
    }

    /// The list of added projects.
    pub fn project_list(&self) -> Projects {
        Projects::new(&self.data_dir)
    }

    // ---- the model ----

    /// The server requests go to, if any: the host's override, else the setting, unless the
    /// host asked for a local model for this run.
    fn server(&self) -> Option<ServerSettings> {
        match (&self.overrides.server, &self.overrides.model) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(self.settings().server).filter(|s| s.url.is_some()),
        }
    }

    /// The installed model (its id or file) requests use when no server is chosen: the
    /// override, else the chosen one, else the largest installed.
    pub fn model_file(&self) -> Result<PathBuf> {
        let choice = self.overrides.model.clone().or(self.settings().model);
        self.model_store().resolve(choice.as_deref(), &Catalog::builtin())
    }

    /// The model requests use, loaded (or connected to) on first use, with `on_event` told
    /// when that takes a while.
    pub async fn model(&self, on_event: &mut (dyn FnMut(ModelEvent) + Send)) -> Result<Arc<Model>> {
        let mut slot = self.model.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let started = Instant::now();
        let loaded = self.load(on_event).await;
        let model = match loaded {
            Ok(m) => Arc::new(m),
            Err(e) => {
                on_event(ModelEvent::Failed { reason: e.to_string() });
                return Err(e);
            }
        };
        on_event(ModelEvent::Loaded {
            name: model.name(),
            seconds: started.elapsed().as_secs_f64(),
            backend: model.backend(),
            note: model.placement_note(),
        });
        *slot = Some(model.clone());
        Ok(model)
    }

    async fn load(&self, on_event: &mut (dyn FnMut(ModelEvent) + Send)) -> Result<Model> {
        Ok(match self.server() {
            Some(ServerSettings { url: Some(url), model }) => {
                on_event(ModelEvent::Loading { source: url.clone() });
                let options = RemoteOptions {
                    model,
                    api_key: api_key(&url)?,
                    timeout: self.overrides.server_timeout.unwrap_or(Duration::from_secs(60)),
                    ..RemoteOptions::new(&url)
                };
                let policy = NetworkPolicy::default_location()?;
                Model::Remote(RemoteModel::connect(options, policy, ConnectionLog::default_location()).await?)
            }
            _ => {
                let path = self.model_file()?;
                on_event(ModelEvent::Loading { source: path.display().to_string() });
                Model::Local(LocalModel::load(&path, &self.overrides.load).await?)
            }
        })
    }

    /// The loaded model's name, without waiting for a load in progress.
    pub fn loaded_model_name(&self) -> Option<String> {
        self.model.try_lock().ok().and_then(|m| m.as_ref().map(|m| m.name()))
    }

    /// Makes installed model `id` the one requests use (kept for the next run; `None`: the
    /// largest installed). The loaded model is let go.
    pub async fn choose_model(&self, id: Option<String>) -> Result<()> {
        if let Some(id) = &id {
            self.model_store().resolve(Some(id), &Catalog::builtin())?;
        }
        self.update_settings(|s| s.model = id)?;
        self.let_go_of_model().await;
        Ok(())
    }

    /// The installed model `id` was removed: forget it as the choice, and let it go.
    pub async fn model_removed(&self, id: &str) -> Result<()> {
        if self.settings().model.as_deref() == Some(id) {
            self.update_settings(|s| s.model = None)?;
        }
        self.let_go_of_model().await;
        Ok(())
    }

    /// Sends requests to the company server at `url` from now on: its host is allowed in the
    /// network policy (refused if an administrator's policy does not allow it) and `api_key`,
    /// if given, goes to the OS keychain.
    pub async fn use_server(&self, url: &str, model: Option<String>, api_key: Option<&str>) -> Result<()> {
        let url = url.trim();
        let id = server_id(url)?;
        // Switching servers: the one left behind is no longer allowed.
        let previous = self.settings().server.url.and_then(|u| server_id(&u).ok()).filter(|p| *p != id);
        NetworkPolicy::change_default_location(|policy| {
            policy.allow(&id)?;
            if let Some(previous) = previous {
                policy.disallow(&previous);
            }
            Ok(())
        })?;
        if let Some(k) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
            keychain::set_api_key(&id, k)?;
        }
        let model = model.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
        self.update_settings(|s| s.server = ServerSettings { url: Some(url.to_string()), model })?;
        self.let_go_of_model().await;
        Ok(())
    }

    /// Back to the model on this machine: the server's host leaves the allowlist, and the
    /// policy goes back to offline when nothing else is allowed. The key stays in the keychain.
    pub async fn stop_using_server(&self) -> Result<()> {
        if let Some(url) = self.settings().server.url {
            let id = server_id(&url)?;
            NetworkPolicy::change_default_location(|policy| {
                policy.disallow(&id);
                if policy.mode() == Mode::Allowlist && policy.user().allow.is_empty() {
                    policy.go_offline();
                }
                Ok(())
            })?;
        }
        self.update_settings(|s| s.server = ServerSettings::default())?;
        self.let_go_of_model().await;
        Ok(())
    }

    async fn let_go_of_model(&self) {
        *self.model.lock().await = None;
    }

    fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<()> {
        let mut settings = self.settings.lock().expect("settings lock");
        let mut next = settings.clone();
        change(&mut next);
        next.save(&self.data_dir)?;
        *settings = next;
        Ok(())
    }

    // ---- projects ----

    /// Adds the folder at `dir` to the user's projects (again is fine) and opens its index.
    pub fn add_project(&self, dir: &Path) -> Result<(Project, Arc<ProjectIndex>)> {
        let project = self.project_list().add(dir)?;
        let index = self.project(&project.root)?;
        Ok((project, index))
    }

    /// The index of the user's project at `root`, opened on first use. Every request that
    /// names a project comes through here, so none can reach a folder the user did not add.
    pub fn project(&self, root: &Path) -> Result<Arc<ProjectIndex>> {
        Ok(self.open_project(root)?.1)
    }

    /// The user's project at `root` (its layout in the app's data) and its index.
    fn open_project(&self, root: &Path) -> Result<(Project, Arc<ProjectIndex>)> {
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        // Held while opening: two requests opening one project at once would otherwise both
        // try to take the index's writer lock.
        let mut open = self.projects.lock().expect("projects lock");
        if let Some(p) = open.get(&root) {
            return Ok((p.project.clone(), p.index.clone()));
        }
        let project = self.project_list().list()?.into_iter().find(|p| p.root == root).ok_or(Error::NotAProject { path: root.clone() })?;
        let index = Arc::new(ProjectIndex::open(&project.root, &project.index_dir)?);
        if let Ok(embedder) = self.embedder() {
            // Vectors are a help, not a requirement: without them search is lexical.
            let _ = index.attach_embedder(embedder);
        }
        open.insert(root, OpenProject { project: project.clone(), index: index.clone(), watcher: None });
        Ok((project, index))
    }

    /// The roots of the projects open in this session.
    pub fn open_roots(&self) -> Vec<PathBuf> {
        self.projects.lock().expect("projects lock").keys().cloned().collect()
    }

    /// The open project's file count and whether a watcher keeps it fresh; `None` if not open.
    pub fn project_status(&self, root: &Path) -> Option<(Option<usize>, bool)> {
        let open = self.projects.lock().expect("projects lock");
        open.get(root).map(|p| (p.index.file_count().ok(), p.watcher.is_some()))
    }

    /// Keeps `watcher` for the open project at `root` (dropping it stops watching).
    pub fn set_watcher(&self, root: &Path, watcher: Watcher) {
        if let Some(p) = self.projects.lock().expect("projects lock").get_mut(root) {
            p.watcher = Some(watcher);
        }
    }

    /// Brings the index of the project at `root` up to date, as a job that removing the
    /// project or closing the host stops (what was committed is kept). A second call while
    /// one runs is refused with [`Error::JobRunning`].
    pub fn index_project(&self, root: &Path, on_progress: &mut dyn FnMut(&IndexProgress)) -> Result<IndexSummary> {
        let index = self.project(root)?;
        let job = indexing_job(index.root());
        let (_job, cancel) = self.job(&job)?;
        index.update(on_progress, &cancel)
    }

    /// Makes `embedder` the project's embedding model in place of the chosen one (a
    /// command's `--embedder`).
    pub fn use_embedder(&self, root: &Path, embedder: Arc<Embedder>) -> Result<()> {
        self.project(root)?.attach_embedder(embedder)
    }


    /// Embeds the project's chunks that have no vector yet (after an update, only new and
    /// changed ones) with its embedding model, as a job: Stop ends it at the next batch,
    /// keeping what was done. `None` when the project has no embedding model.
    pub fn embed_project(&self, root: &Path, on_progress: &mut dyn FnMut(&EmbedProgress)) -> Result<Option<EmbedSummary>> {
        let index = self.project(root)?;
        let job = embedding_job(index.root());
        let (_job, cancel) = self.job(&job)?;
        index.embed_pending(on_progress, &cancel)
    }

    /// Builds the project's search-by-meaning table now, so that the next question does not
    /// wait for it (see [`ProjectIndex::warm_semantic_table`]); the app calls it after each
    /// embedding run, in the background. `true` when it built one.
    pub fn warm_search(&self, root: &Path) -> Result<bool> {
        self.project(root)?.warm_semantic_table()
    }

    /// Searches the project by `mode` with the vectors embedded so far (lexically when the
    /// mode is lexical or the project has no embedding model).
    pub fn search_project(&self, root: &Path, query: &str, options: &SearchOptions, mode: SearchMode) -> Result<SearchResults> {
        self.project(root)?.retrieve_by(query, options, mode)
    }

    /// Closes the project at `root` (its indexing and its watcher stop) and removes it from
    /// the user's list, deleting its index; the folder itself is not touched.
    pub fn remove_project(&self, root: &Path) -> Result<Option<Project>> {
        let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        self.cancel(&indexing_job(&canonical));
        self.projects.lock().expect("projects lock").remove(&canonical);
        self.project_list().remove(&canonical)
    }

    // ---- long jobs ----

    /// Registers job `id` (a generation, a download, an indexing run) so [`Session::cancel`]
    /// or [`Session::shut_down`] can stop it. An id already running is refused.
    pub fn start_job(&self, id: &str) -> Option<CancellationToken> {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if jobs.contains_key(id) {
            return None;
        }
        let token = CancellationToken::new();
        jobs.insert(id.to_string(), token.clone());
        Some(token)
    }

    /// Forgets the job `id` (it has ended).
    pub fn end_job(&self, id: &str) {
        self.jobs.lock().expect("jobs lock").remove(id);
    }

    /// Whether the job `id` is running.
    pub fn is_running(&self, id: &str) -> bool {
        self.jobs.lock().expect("jobs lock").contains_key(id)
    }

    /// The ids of the jobs in flight whose id starts with `prefix`.
    pub fn running(&self, prefix: &str) -> Vec<String> {
        self.jobs.lock().expect("jobs lock").keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    /// Stops job `id` at its next check (what it finished is kept). False if none runs.
    pub fn cancel(&self, id: &str) -> bool {
        match self.jobs.lock().expect("jobs lock").get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every job and watcher: the host is closing.
    pub fn shut_down(&self) {
        for token in self.jobs.lock().expect("jobs lock").values() {
            token.cancel();
        }
        for p in self.projects.lock().expect("projects lock").values_mut() {
            p.watcher = None;
        }
    }
}

/// The job name of a project's indexing run.
fn indexing_job(root: &Path) -> String {
    format!("index:{}", root.display())
}

fn embedding_job(root: &Path) -> String {
    format!("embed:{}", root.display())
}

/// The key for the server at `url`: `PERIMETER_API_KEY` when set, else the one kept in the
/// OS keychain. A keychain that cannot be read is not fatal: the server may need no key (a
/// 401 then says so).
fn api_key(url: &str) -> Result<Option<String>> {
    if let Some(k) = std::env::var("PERIMETER_API_KEY").ok().filter(|k| !k.is_empty()) {
        return Ok(Some(k));
    }
    Ok(keychain::api_key(&server_id(url)?).ok().flatten())
}
