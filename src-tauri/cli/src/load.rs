//! Finding and loading the model a command asked for (with a spinner while it loads), or
//! connecting to the company's inference server: the engine session decides which, from the
//! command's flags and the user's settings.

use std::time::Duration;

use clap::Args;
use perimeter_engine::inference::{ComputeDtype, LoadOptions, LocalModel};
use perimeter_engine::session::{ModelEvent, Overrides, ServerSettings, Session};

use crate::progress;

/// Where the answer comes from when it is not a model on this machine.
#[derive(Args, Clone, Default)]
pub struct ServerArgs {
    /// The company's OpenAI-compatible inference server (vLLM, `mistralrs serve`,
    /// `perimeter serve`), e.g. https://llm.corp.example. Its host must be allowed by the
    /// network policy (`perimeter network allow HOST`). Its API key, if it needs one, comes
    /// from the OS keychain (`perimeter network key URL`) or PERIMETER_API_KEY.
    #[arg(long, conflicts_with = "model")]
    pub server: Option<String>,
    /// The server's model to use (default: the first it lists).
    #[arg(long, requires = "server")]
    pub server_model: Option<String>,
    /// Seconds to wait for the server to connect, and for each piece of the answer.
    #[arg(long, requires = "server", default_value_t = 60)]
    pub server_timeout: u64,
}

/// A model on this machine, loaded outside any request (`serve`, `bench`): `name` (an
/// installed model or a file) or else the one the user chose, found as the session finds it.
pub async fn load_model(name: Option<&str>, options: &LoadOptions, show_progress: bool) -> anyhow::Result<LocalModel> {
    let overrides = Overrides { model: name.map(str::to_string), load: options.clone(), ..Overrides::default() };
    let path = Session::open(overrides)?.model_file()?;
    let mut spinner = Spinner::new(show_progress);
    spinner.show(ModelEvent::Loading { source: path.display().to_string() });
    let result = LocalModel::load(&path, options).await;
    spinner.show(ModelEvent::Unloaded);
    Ok(result?)
}

/// A spinner on the terminal while a model loads (or a company server connects).
pub struct Spinner {
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Spinner {
    pub fn new(enabled: bool) -> Spinner {
        Spinner { enabled, bar: None }
    }

    /// Follows the session's model events: spinning from `Loading` until anything else.
    pub fn show(&mut self, event: ModelEvent) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        match event {
            ModelEvent::Loading { source } => self.bar = self.enabled.then(|| progress::spinner(&format!("loading {source}"))),
            // Where it runs: the CUDA build says here when it fell back to the CPU, and why.
            ModelEvent::Loaded { name, seconds, backend, note } if self.enabled => {
                eprintln!("{name} loaded in {seconds:.1} s · {backend}");
                if let Some(note) = note {
                    eprintln!("note: {note}");
                }
            }
            _ => {}
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Which model answers a request: an installed one (with its compute precision), or the
/// company server `--server` names; without either, what the user chose (in the app or with
/// `perimeter models use`), as the app does. Shared by `ask` and `edit`.
#[derive(Args, Clone)]
pub struct ModelChoice {
    /// An installed model's name, or the path of a .gguf file (default: the one chosen with
    /// `perimeter models use` or in the app, else the largest installed).
    #[arg(long)]
    pub model: Option<String>,
    /// Precision of activations: auto, f32, f16, bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: ComputeDtype,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl ModelChoice {
    /// The engine session these flags ask for (they apply to this run only).
    pub fn session(&self) -> anyhow::Result<Session> {
        let overrides = Overrides {
            model: self.model.clone(),
            server: self.server.server.as_ref().map(|url| ServerSettings { url: Some(url.clone()), model: self.server.server_model.clone() }),
            load: LoadOptions { dtype: self.dtype, ..LoadOptions::default() },
            server_timeout: Some(Duration::from_secs(self.server.server_timeout.max(1))),
        };
        Ok(Session::open(overrides)?)
    }
}
