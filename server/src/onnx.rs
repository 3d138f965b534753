//! ONNX Runtime, loaded once per process from the library `parlance models` installs (for the Piper voice
//! and the embeddings model, later the VAD). ort allows one library and one environment per process: the
//! first `init_from` wins and a second environment is refused, so every model that runs on ONNX goes through
//! [`runtime`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::models::Installer;
use crate::models::catalog::ONNX_RUNTIME;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    #[error("could not load ONNX Runtime from {}: {reason}; `parlance models` installs it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("ONNX Runtime is already loaded from {}, so {} cannot be used in this process", loaded.display(), requested.display())]
    OtherLibrary { loaded: PathBuf, requested: PathBuf },
}

struct Runtime {
    library: PathBuf,
    loaded: Result<Environment, OnnxError>,
}

/// Set once ONNX Runtime has been loaded (or loading it was attempted): from then on the process is bound to it.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// A session builder with the settings every Parlance model shares: full graph optimisation, `threads`
/// intra-op workers, and no busy-waiting once a run ends. The workers spin between operators (fast), and by
/// default for a while after a run too, on the cores the next stage needs: after each query embedding one
/// knowledge search in twenty took 17 ms or more instead of 11 (p95, knowledge bench), and after each spoken
/// sentence the language model writing the next one waited for them. Turning spinning off entirely made an
/// embedding 1-2 ms slower.
pub fn session_builder(environment: &Environment, threads: usize) -> ort::Result<SessionBuilder> {
    Session::builder(environment)
        .and_then(|builder| builder.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into))
        .and_then(|builder| builder.with_intra_threads(threads).map_err(Into::into))
        .and_then(|builder| builder.with_config_entry("session.force_spinning_stop", "1").map_err(Into::into))
}

/// Where `parlance models` puts the ONNX Runtime library under `models_dir`.
pub fn library_in(models_dir: &Path) -> PathBuf {
    let file = ONNX_RUNTIME.files.first().map_or("libonnxruntime.so", |file| file.name);
    Installer::new(models_dir).model_dir(&ONNX_RUNTIME).join(file)
}

/// The process's ONNX Runtime environment, loading `library` on the first call. Later calls get the same
/// environment (or the same error) as long as they name the same library. A library file that does not
/// exist binds nothing: a later call may name another.
pub fn runtime(library: &Path) -> Result<&'static Environment, OnnxError> {
    let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    if RUNTIME.get().is_none() && !library.is_file() {
        return Err(OnnxError::Load { path: library.to_path_buf(), reason: "the file does not exist".to_owned() });
    }
    let runtime = RUNTIME.get_or_init(|| Runtime { library: library.to_path_buf(), loaded: load(library) });
    if runtime.library != library {
        return Err(OnnxError::OtherLibrary { loaded: runtime.library.clone(), requested: library.to_path_buf() });
    }
    runtime.loaded.as_ref().map_err(Clone::clone)
}

fn load(library: &Path) -> Result<Environment, OnnxError> {
    let started = Instant::now();
    let fail = |reason: String| OnnxError::Load { path: library.to_path_buf(), reason };
    let environment =
        ort::init_from(library).map_err(|e| fail(e.to_string()))?.with_name("parlance").build().map_err(|e| fail(e.to_string()))?;
    crate::exit::skip_native_teardown();
    let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(library = %library.display(), load_ms, "ONNX Runtime loaded");
    Ok(environment)
}
