//! Finding and loading the model a command asked for (with a spinner while it loads), or
//! connecting to the company's inference server when `--server` is given.

use std::time::Duration;

use clap::Args;
use perimeter_engine::inference::remote::server_id;
use perimeter_engine::inference::{ComputeDtype, LoadOptions, LocalModel, Model, RemoteModel, RemoteOptions};
use perimeter_engine::models::{Catalog, ModelStore};
use perimeter_engine::network::{keychain, ConnectionLog, NetworkPolicy};

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

pub async fn load_model(name: Option<&str>, options: &LoadOptions, show_progress: bool) -> anyhow::Result<LocalModel> {
    let path = ModelStore::default_location().resolve(name, &Catalog::builtin())?;
    let spinner = show_progress.then(|| progress::spinner(&format!("loading {}", path.display())));
    let result = LocalModel::load(&path, options).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(result?)
}

/// The key for `url`: PERIMETER_API_KEY when set, else the one `perimeter network key` stored
/// in the OS keychain. A keychain that cannot be read is reported but not fatal: the server
/// may need no key.
fn api_key(url: &str) -> anyhow::Result<Option<String>> {
    if let Some(k) = std::env::var("PERIMETER_API_KEY").ok().filter(|k| !k.is_empty()) {
        return Ok(Some(k));
    }
    match keychain::api_key(&server_id(url)?) {
        Ok(k) => Ok(k),
        Err(e) => {
            eprintln!("warning: {e}");
            Ok(None)
        }
    }
}

/// Which model answers a request: an installed one (with its compute precision), or the
/// company server `--server` names. Shared by `ask` and `edit`.
#[derive(Args, Clone)]
pub struct ModelChoice {
    /// An installed model's name, or the path of a .gguf file (default: the largest installed).
    #[arg(long)]
    pub model: Option<String>,
    /// Precision of activations: auto, f32, f16, bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: ComputeDtype,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl ModelChoice {
    /// Loads the local model, or connects to the server.
    pub async fn open(&self, show_progress: bool) -> anyhow::Result<Model> {
        let Some(url) = &self.server.server else {
            let options = LoadOptions { dtype: self.dtype, ..LoadOptions::default() };
            return Ok(Model::Local(load_model(self.model.as_deref(), &options, show_progress).await?));
        };
        let remote = RemoteOptions {
            url: url.clone(),
            model: self.server.server_model.clone(),
            api_key: api_key(url)?,
            context_length: None,
            timeout: Duration::from_secs(self.server.server_timeout.max(1)),
        };
        let model = RemoteModel::connect(remote, NetworkPolicy::default_location()?, ConnectionLog::default_location()).await?;
        Ok(Model::Remote(model))
    }
}
