//! What requests stream to the window while they run: the model's load as `model-load`
//! events (heard by the sidebar and the loading notice, whichever view asked), and the
//! answer's text over the request's own `Channel`.

use perimeter_engine::session::ModelEvent;
use tauri::ipc::Channel;
use tauri::AppHandle;

use crate::events;

/// Sends a request's model load to the window as `model-load` events (the sidebar and the
/// loading notice), so the first request does not look hung.
pub fn model_events(app: &AppHandle) -> impl FnMut(ModelEvent) + Send + '_ {
    move |e| events::MODEL_LOAD.emit(app, e)
}

/// Tells the window the loaded model was let go (a switch of model or server).
pub fn model_unloaded(app: &AppHandle) {
    events::MODEL_LOAD.emit(app, ModelEvent::Unloaded);
}

/// Sends each piece of an answer to the window; a closed channel (the view went away)
/// stops the generation.
pub fn text_sink(channel: &Channel<String>) -> impl FnMut(&str) -> bool + Send + '_ {
    move |text| channel.send(text.to_string()).is_ok()
}
