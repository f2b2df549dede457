//! `perimeter models`: the catalog and the installed models.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use perimeter_engine::models::download::{self, partial_download, Phase, PullOptions};
use perimeter_engine::models::store::ImportMode;
use perimeter_engine::models::{Catalog, ModelStore};
use perimeter_engine::network::{ConnectionLog, NetworkPolicy};
use perimeter_engine::session::{Overrides, Session};
use perimeter_engine::Error;
use serde_json::json;

use crate::progress::{self, size};
use crate::stream::cancel_on_ctrl_c;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The catalog, and which of its models are installed.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Copy (or, with --link, reference in place) a .gguf file into the app's model folder,
    /// after checking it is a model this app can run.
    Import {
        file: PathBuf,
        /// Leave the file where it is; the app will never delete it.
        #[arg(long, conflicts_with = "move_file")]
        link: bool,
        /// Move the file into the model folder instead of copying it (instant on the same disk).
        #[arg(long = "move")]
        move_file: bool,
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model from a source the network policy allows (resumable; checked
    /// against the catalog's size and sha256 before it is listed). Ctrl-C stops and keeps
    /// what was downloaded for the next try.
    Pull {
        /// The catalog id (`perimeter models list`).
        name: String,
        /// Download from this URL (the .gguf file itself) instead of the mirrors and the catalog's sources.
        #[arg(long)]
        from: Option<String>,
        /// Seconds to wait for a connection, and for each piece of the file.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Progress and the result as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed model (a copied file is deleted, a linked one is left where it is),
    /// or what an unfinished download of it left.
    Rm {
        name: String,
    },
    /// Make an installed model the one `ask` and `edit` use without --model, here and in the
    /// app (kept in the settings); `--largest` goes back to the largest installed.
    Use {
        #[arg(required_unless_present = "largest")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        largest: bool,
    },
    /// The embedding models of search by meaning: which are installed, which is in use. With
    /// an id, make that one the one search uses, here and in the app (kept in the settings).
    Embedder {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-check every installed model's file and checksum.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let session = Session::open(Overrides::default())?;
    let store = session.model_store();
    let catalog = Catalog::builtin();
    match cmd {
        ModelsCommand::List { json } => {
            let installed = store.list()?;
            if json {
                let out = json!({ "catalog": catalog.models, "installed": installed, "folder": store.dir() });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<40} {:>8} {:>10} {:<8} {:<10}", "catalog model", "quant", "file", "context", "installed");
            for m in &catalog.models {
                let is_installed = installed.iter().any(|i| i.catalog_id.as_deref() == Some(m.id.as_str()));
                println!(
                    "{:<40} {:>8} {:>10} {:<8} {:<10}",
                    m.id,
                    m.quantization,
                    size(m.size_bytes),
                    m.context_length,
                    if is_installed { "yes" } else { "" }
                );
            }
            let in_use = session.model_file().ok();
            println!("\nInstalled in {}:", store.dir().display());
            if installed.is_empty() {
                println!("  none — run scripts/fetch-models.sh, or `perimeter models import FILE`");
            }
            for m in &installed {
                println!(
                    "  {:<38} {} {} {:.0}M params, {}{}{}",
                    m.id,
                    m.info.architecture,
                    m.info.quantization,
                    m.info.parameter_count as f64 / 1e6,
                    m.file.display(),
                    if m.linked { " (linked)" } else { "" },
                    if in_use.as_ref() == Some(&m.file) { "  ← in use" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Import { file, link, move_file, json } => {
            let bar = progress::bytes(if link { "hashing" } else if move_file { "moving" } else { "copying" });
            let mode = match (link, move_file) {
                (true, _) => ImportMode::Link,
                (_, true) => ImportMode::Move,
                _ => ImportMode::Copy,
            };
            let result = store.import(&file, mode, &catalog, &mut progress::reporter(&bar));
            bar.finish_and_clear();
            let m = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!(
                    "imported {} ({} {}, {:.0}M parameters, context {}) → {}",
                    m.id,
                    m.info.architecture,
                    m.info.quantization,
                    m.info.parameter_count as f64 / 1e6,
                    m.info.context_length.map_or("unknown".into(), |c| c.to_string()),
                    m.file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Pull { name, from, timeout, json } => pull(&store, &catalog, &name, from, timeout, json).await,
        ModelsCommand::Rm { name } => {
            // Not installed: a catalog model may still have an unfinished download.
            if let (None, Some(m)) = (store.find(&name)?, catalog.get(&name)) {
                if let Some((bytes, part)) = partial_download(&store, m) {
                    store.discard_partial(&m.file_name)?;
                    println!("deleted the unfinished download of {name} ({}, {})", size(bytes), part.display());
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let removed = store.remove(&name)?;
            session.model_removed(&removed.id).await?;
            if removed.linked {
                println!("removed {} from the list; its file stays at {}", removed.id, removed.file.display());
            } else {
                println!("removed {} and deleted {}", removed.id, removed.file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Use { name, largest: _ } => {
            session.choose_model(name).await?;
            println!("requests will use {}", session.model_file()?.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Embedder { id, json } => {
            if let Some(id) = &id {
                let bar = progress::spinner(&format!("loading {id}"));
                let chosen = session.choose_embedder(id);
                bar.finish_and_clear();
                let chosen = chosen?;
                if !json {
                    println!("search by meaning will use {id} ({} dimensions)", chosen.dims());
                }
            }
            let embedders = session.embedders();
            if json {
                println!("{}", serde_json::to_string_pretty(&embedders)?);
            } else if id.is_none() {
                for e in &embedders {
                    let state = match (e.selected, e.installed) {
                        (true, true) => "in use",
                        (true, false) => "chosen, not installed",
                        (false, true) => "installed",
                        (false, false) => "",
                    };
                    println!("{:<22} {:>8} {:<22} {}", e.id, size(e.size_bytes), state, e.summary);
                }
                println!("\nInstalled in {}", store.dir().display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { json } => {
            let bar = progress::bytes("verifying");
            let reports = store.verify(&catalog, &mut progress::reporter(&bar));
            bar.finish_and_clear();
            let reports = reports?;
            let all_ok = reports.iter().all(|r| r.ok);
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                if reports.is_empty() {
                    println!("no models installed");
                }
                for r in &reports {
                    match &r.problem {
                        None => println!("ok      {}", r.id),
                        Some(p) => println!("FAILED  {}: {p}", r.id),
                    }
                }
            }
            Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// `perimeter models pull`: exit 0 installed, 1 failed, 130 cancelled (what was fetched is kept).
async fn pull(store: &ModelStore, catalog: &Catalog, name: &str, from: Option<String>, timeout: u64, json: bool) -> anyhow::Result<ExitCode> {
    let model = catalog.get(name).ok_or_else(|| Error::UnknownModel { name: name.to_string() })?;
    if let Some(m) = store.find(&model.id)?.filter(|m| m.file.is_file()) {
        if json {
            println!("{}", json!({ "event": "installed", "model": m, "already": true }));
        } else {
            println!("{} is already installed ({})", m.id, m.file.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let policy = NetworkPolicy::default_location()?;
    let log = ConnectionLog::default_location();
    let options = PullOptions { from, timeout: Duration::from_secs(timeout.max(1)) };
    let cancel = cancel_on_ctrl_c();
    let bar = progress::bytes(&format!("downloading {}", model.id));
    let mut last_phase = None;
    let mut on_progress = |p: &download::PullProgress| {
        if json {
            println!("{}", json!({ "event": "progress", "progress": p }));
            return;
        }
        if last_phase != Some(p.phase) {
            last_phase = Some(p.phase);
            bar.set_message(match p.phase {
                Phase::Checking => format!("checking the {} already downloaded", size(p.resumed_from)),
                Phase::Downloading => format!("downloading {} from {}", p.model, p.source),
            });
        }
        progress::reporter(&bar)(p.done, p.total);
    };
    let result = download::pull(store, catalog, &model.id, &policy, &log, &options, &mut on_progress, &cancel).await;
    bar.finish_and_clear();
    match result {
        Ok(m) => {
            if json {
                println!("{}", json!({ "event": "installed", "model": m, "already": false }));
            } else {
                println!("installed {} ({}, sha256 {}) → {}", m.id, size(model.size_bytes), m.sha256, m.file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ Error::DownloadCancelled { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}
