//! What the app holds between commands: the engine session (settings, the loaded model, open
//! projects, long jobs). Everything else a command needs comes from its arguments.

use perimeter_engine::session::{Overrides, Session};

pub struct AppState {
    pub session: Session,
}

impl Default for AppState {
    fn default() -> AppState {
        let (session, note) = Session::open_or_recover(Overrides::default());
        if let Some(note) = note {
            eprintln!("perimeter: {note}");
        }
        AppState { session }
    }
}
