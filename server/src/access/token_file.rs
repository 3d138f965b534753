//! The token a server exposed to the network makes for itself when none is configured: created once in the
//! data directory, readable by its owner only, and reused on every later start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// The file's name in the data directory.
pub const TOKEN_FILE: &str = "token";

/// A token from the data directory.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    pub token: SecretString,
    pub path: PathBuf,
    /// `true` on the start that created it: the only time the sign-in link is printed.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("could not create the data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("could not write the sign-in token to {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("could not read the sign-in token from {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the sign-in token file {} holds no token of at least {} characters (a generated one is remade if its file is deleted)",
        path.display(),
        super::MIN_TOKEN_CHARS
    )]
    Unusable { path: PathBuf },
}

/// The token kept in `data_dir`, made first if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<GeneratedToken, TokenFileError> {
    let path = data_dir.join(TOKEN_FILE);
    std::fs::create_dir_all(data_dir).map_err(|source| TokenFileError::CreateDir { path: data_dir.to_owned(), source })?;
    let token = super::new_token();
    match create_private(&path) {
        Ok(mut file) => {
            let written = file.write_all(format!("{token}\n").as_bytes()).and_then(|()| file.sync_all());
            if let Err(source) = written {
                // A half-written token would lock the owner out on the next start.
                let _ = std::fs::remove_file(&path);
                return Err(TokenFileError::Write { path, source });
            }
            Ok(GeneratedToken { token: SecretString::from(token), path, created: true })
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(source) => Err(TokenFileError::Write { path, source }),
    }
}

/// Reads a token file (the generated one, or `--token-file`).
pub fn read(path: &Path) -> Result<GeneratedToken, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read { path: path.to_owned(), source })?;
    let token = text.trim();
    if token.chars().count() < super::MIN_TOKEN_CHARS {
        return Err(TokenFileError::Unusable { path: path.to_owned() });
    }
    Ok(GeneratedToken { token: SecretString::from(token.to_owned()), path: path.to_owned(), created: false })
}

/// Created with mode 0600 from the start, so the token is never readable by others, not even for a moment.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn the_token_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let again = load_or_create(dir.path()).unwrap();
        assert!(!again.created);
        assert_eq!(again.token.expose_secret(), first.token.expose_secret());

        std::fs::write(&first.path, "short\n").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(TokenFileError::Unusable { .. })));
    }
}
