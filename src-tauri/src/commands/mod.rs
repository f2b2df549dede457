//! The app's commands, by view. Each unpacks its arguments, calls the engine session, and
//! turns engine errors into a [`CmdError`]: a kind to decide by and a message for the window.

pub mod agent;
pub mod chat;
pub mod edits;
pub mod models;
pub mod network;
pub mod projects;
pub mod server;
pub mod streams;

/// What a command's failure sends the window: `kind`, a stable name the UI may decide by
/// (the engine's [`perimeter_engine::Error::kind`], or `other`), and `message`, which says
/// what to do.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct CmdError {
    pub kind: &'static str,
    pub message: String,
}

pub type CmdResult<T> = Result<T, CmdError>;

impl From<perimeter_engine::Error> for CmdError {
    fn from(e: perimeter_engine::Error) -> CmdError {
        CmdError { kind: e.kind(), message: e.message_for(perimeter_engine::Host::Window) }
    }
}

impl From<String> for CmdError {
    fn from(message: String) -> CmdError {
        CmdError { kind: "other", message }
    }
}

/// A failure outside the engine (a task that panicked, a window error), in words.
pub fn message(e: impl std::fmt::Display) -> CmdError {
    CmdError { kind: "other", message: e.to_string() }
}

