//! Finding and loading the model a command asked for, with a spinner while it loads.

use perimeter_engine::inference::{LoadOptions, LocalModel};
use perimeter_engine::models::{Catalog, ModelStore};

use crate::progress;

pub async fn load_model(name: Option<&str>, options: &LoadOptions, show_progress: bool) -> anyhow::Result<LocalModel> {
    let path = ModelStore::default_location().resolve(name, &Catalog::builtin())?;
    let spinner = show_progress.then(|| progress::spinner(&format!("loading {}", path.display())));
    let result = LocalModel::load(&path, options).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(result?)
}
