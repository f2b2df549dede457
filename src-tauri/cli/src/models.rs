//! `perimeter models`: the catalog and the installed models.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use perimeter_engine::models::store::ImportMode;
use perimeter_engine::models::{Catalog, ModelStore};
use serde_json::json;

use crate::progress::{self, size};

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
        #[arg(long)]
        link: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed model: a copied file is deleted, a linked one is left where it is.
    Rm {
        name: String,
    },
    /// Re-check every installed model's file and checksum.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let store = ModelStore::default_location();
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
            println!("\nInstalled in {}:", store.dir().display());
            if installed.is_empty() {
                println!("  none — run scripts/fetch-models.sh, or `perimeter models import FILE`");
            }
            for m in &installed {
                println!(
                    "  {:<38} {} {} {:.0}M params, {}{}",
                    m.id,
                    m.info.architecture,
                    m.info.quantization,
                    m.info.parameter_count as f64 / 1e6,
                    m.file.display(),
                    if m.linked { " (linked)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Import { file, link, json } => {
            let bar = progress::bytes(if link { "hashing" } else { "copying" });
            let mode = if link { ImportMode::Link } else { ImportMode::Copy };
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
        ModelsCommand::Rm { name } => {
            let removed = store.remove(&name)?;
            if removed.linked {
                println!("removed {} from the list; its file stays at {}", removed.id, removed.file.display());
            } else {
                println!("removed {} and deleted {}", removed.id, removed.file.display());
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
