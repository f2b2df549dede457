//! The events the shell sends the window, each name written once with its payload type:
//! the shell emits through these constants, and the generated bindings' `Events` map gives
//! the window the same names and types.

use std::marker::PhantomData;
use std::path::PathBuf;

use perimeter_engine::index::{EmbedProgress, EmbedSummary, IndexProgress, IndexSummary};
use perimeter_engine::models::download::PullProgress;
use perimeter_engine::session::ModelEvent;
use serde::Serialize;
use tauri::{AppHandle, Emitter};

/// An event name that carries payloads of type `T`.
pub struct Event<T> {
    pub name: &'static str,
    payload: PhantomData<fn(T)>,
}

impl<T: Serialize + Clone> Event<T> {
    const fn new(name: &'static str) -> Event<T> {
        Event { name, payload: PhantomData }
    }

    /// Sends `payload` to the window; a window that is gone is not an error.
    pub fn emit(&self, app: &AppHandle, payload: T) {
        let _ = app.emit(self.name, payload);
    }
}

macro_rules! events {
    ($($(#[$doc:meta])* $konst:ident = $name:literal: $payload:ty;)*) => {
        $( $(#[$doc])* pub const $konst: Event<$payload> = Event::new($name); )*

        /// The TypeScript map from event name to payload type.
        #[cfg(test)]
        pub fn typescript(cfg: &ts_rs::Config) -> String {
            let mut out = String::from("/** Every event the shell sends, by name (src-tauri/src/events.rs). */\nexport type Events = {\n");
            $( out += &format!("  \"{}\": {};\n", $name, <$payload as ts_rs::TS>::name(cfg)); )*
            out + "};\n"
        }
    };
}

events! {
    /// A model loading (or a company server connecting) for a request, whichever view asked.
    MODEL_LOAD = "model-load": ModelEvent;
    MODEL_DOWNLOAD_PROGRESS = "model-download-progress": PullProgress;
    MODEL_IMPORT_PROGRESS = "model-import-progress": ImportProgress;
    /// A project's first indexing, a few times a second.
    INDEX_PROGRESS = "index-progress": IndexEvent;
    INDEX_DONE = "index-done": IndexDone;
    /// The watcher re-indexed changed files.
    INDEX_UPDATED = "index-updated": IndexUpdated;
    /// A project's chunks being embedded for search by meaning, after indexing.
    EMBED_PROGRESS = "embed-progress": EmbedEvent;
    EMBED_DONE = "embed-done": EmbedDone;
}

// ---- payloads ----

/// Bytes of a model file copied into the model folder so far.
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct ImportProgress {
    pub file: String,
    pub done: u64,
    pub total: u64,
}

/// A project's indexing progress, with its read speed.
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct IndexEvent {
    pub root: PathBuf,
    #[serde(flatten)]
    pub progress: IndexProgress,
    pub mb_per_s: f64,
}

/// A project's indexing ended: what it did, or why it failed (worded for the window).
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct IndexDone {
    pub root: PathBuf,
    pub summary: Option<IndexSummary>,
    pub error: Option<String>,
}

/// Chunks embedded so far in a project's embedding run.
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct EmbedEvent {
    pub root: PathBuf,
    #[serde(flatten)]
    pub progress: EmbedProgress,
}

/// A project's embedding run ended: search is hybrid from here on (or lexical, with the error).
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct EmbedDone {
    pub root: PathBuf,
    pub summary: Option<EmbedSummary>,
    pub error: Option<String>,
}

/// The watcher re-indexed `paths`; `files` is the project's new file count.
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct IndexUpdated {
    pub root: PathBuf,
    pub paths: Vec<String>,
    pub files: Option<usize>,
    pub error: Option<String>,
}
