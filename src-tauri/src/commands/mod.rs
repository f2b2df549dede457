//! The app's commands, by view. Each unpacks its arguments, calls the engine, and turns
//! engine errors into the readable message the UI shows.

pub mod chat;
pub mod edits;
pub mod models;
pub mod network;
pub mod projects;
pub mod server;

/// Engine errors reach the UI as their message, which already says what to do.
pub type CmdResult<T> = Result<T, String>;

/// A piece of streamed text, tagged with the request it belongs to.
#[derive(Clone, serde::Serialize)]
pub struct TokenEvent<'a> {
    pub request: &'a str,
    pub text: &'a str,
}

pub fn message(e: impl std::fmt::Display) -> String {
    e.to_string()
}
