//! What the app holds between commands: the engine session (settings, the loaded model, open
//! projects, long jobs), and the agent runs waiting on the user's approval of a command.
//! Everything else a command needs comes from its arguments.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use perimeter_engine::agent::Decision;
use perimeter_engine::session::{Overrides, Session};

pub struct AppState {
    pub session: Session,
    /// Agent runs waiting for "run this command?", by request id: where the answer goes.
    pub approvals: Mutex<HashMap<String, Sender<Decision>>>,
}

impl Default for AppState {
    fn default() -> AppState {
        let (session, note) = Session::open_or_recover(Overrides::default());
        if let Some(note) = note {
            eprintln!("perimeter: {note}");
        }
        AppState { session, approvals: Mutex::new(HashMap::new()) }
    }
}
