//! Perimeter's engine: everything the desktop app and the `perimeter` CLI do, with no GUI
//! or command-line dependency.
//!
//! One request, end to end:
//!
//! 1. [`hardware`] probes the machine; [`models::fit`] classifies every [`models::catalog`]
//!    model as fitting on the GPU, in RAM, or too large, and recommends one.
//! 2. [`models::store`] holds the installed GGUF files, each checked by [`models::gguf`]
//!    before it is copied or loaded.
//! 3. [`projects`] lists the folders the user added and lays out each one's data (index,
//!    conversations, proposals, history); [`index`] keeps a tantivy index of each, fresh
//!    through a file watcher, and ranks its files and chunks for a question: by its words
//!    (BM25), by meaning through [`embed`]'s vectors, or both fused.
//! 4. [`inference`] loads a model in-process (mistral.rs) and streams its answer into a
//!    token sink, cancellable at any token.
//! 5. [`assistant`] answers a question from the project (retrieval, a prompt fitted to the
//!    model's context window, citations checked) and keeps [`assistant::Conversations`];
//!    for a change request it gets edits from the model, which [`edit`] turns into a
//!    reviewable proposal, applies atomically and can undo.
//!
//! [`session`] holds all of it for a host (the app, the CLI): the user's settings, the
//! loaded model, the open projects and the cancellation of every long job; and it serves
//! the requests themselves (a question, a change proposed, applied, undone), so both hosts
//! only present them.
//!
//! [`network`] decides whether any connection may be opened (offline by default, or an
//! allowlist an administrator can cap) and logs every one that is; nothing in the steps above
//! opens one. [`paths`] keeps the model loader's hub cache inside the app's data folder and
//! offline.

#![warn(missing_docs)]

pub mod agent;
pub mod assistant;
pub mod context;
pub mod edit;
pub mod embed;
pub mod error;
pub mod hardware;
pub mod index;
pub mod inference;
pub mod models;
pub mod network;
pub mod paths;
pub mod projects;
pub mod records;
pub mod session;

pub use error::{Error, Host, Result};
/// The one way to stop a long job (a generation, a download, an indexing run): the host
/// cancels, the job stops at its next step and keeps what it finished.
pub use tokio_util::sync::CancellationToken;
