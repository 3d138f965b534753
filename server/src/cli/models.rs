//! `parlance models`: what a person runs (and `scripts/run.sh` runs for them) to get the local models.

use std::path::Path;
use std::time::Instant;

use crate::config::ModelsArgs;
use crate::models::catalog::{self, ModelSpec};
use crate::models::{Installer, ModelError};

#[derive(Debug, thiserror::Error)]
pub enum ModelsCommandError {
    #[error("there is no model {id:?}; the models are: {known}")]
    UnknownModel { id: String, known: String },
    #[error(transparent)]
    Install(Box<ModelError>),
}

impl From<ModelError> for ModelsCommandError {
    fn from(error: ModelError) -> Self {
        Self::Install(Box::new(error))
    }
}

pub fn run_models_command(models_dir: &Path, args: &ModelsArgs) -> Result<(), ModelsCommandError> {
    let installer = Installer::new(models_dir).with_python(&args.python);
    if args.list {
        println!("{:<30} {:>8}  {:<14} what it is", "model", "size", "status");
        for model in catalog::ALL {
            let status = if installer.is_installed(model) {
                "installed"
            } else if model.default {
                "missing"
            } else {
                "optional"
            };
            println!("{:<30} {:>5} MB  {:<14} {}", model.id, model.size() / 1_000_000, status, model.description);
        }
        println!("\nModels directory: {}", models_dir.display());
        return Ok(());
    }

    let chosen = choose(&args.only)?;
    let started = Instant::now();
    let mut fetched_bytes = 0;
    for model in chosen {
        let report = installer.install(model)?;
        if report.already_installed {
            println!("{:<30} up to date", model.id);
        } else {
            fetched_bytes += report.bytes;
            println!("{:<30} installed ({} MB) in {}", model.id, report.bytes / 1_000_000, report.dir.display());
        }
    }
    println!(
        "Models ready in {} ({} MB installed, {:.1} s).",
        models_dir.display(),
        fetched_bytes / 1_000_000,
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

fn choose(only: &[String]) -> Result<Vec<&'static ModelSpec>, ModelsCommandError> {
    if only.is_empty() {
        return Ok(catalog::ALL.iter().filter(|model| model.default).collect());
    }
    only.iter()
        .map(|id| {
            catalog::find(id.trim()).ok_or_else(|| ModelsCommandError::UnknownModel {
                id: id.clone(),
                known: catalog::ALL.iter().map(|m| m.id).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}
