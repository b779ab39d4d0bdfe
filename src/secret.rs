//! Secrets (SMTP password, unsubscribe HMAC key): where they come from, and a wrapper that
//! keeps them out of logs, reports and `Debug` output.

use std::fmt;
use std::path::PathBuf;

/// Where a secret is read from. Campaign files name the source, never the value.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file whose contents (minus one trailing newline) are the secret.
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set; export it before running mailshot")]
    MissingEnv(String),
    #[error("environment variable {0} is empty")]
    EmptyEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
}

impl SecretSource {
    pub fn load(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Env(var) => {
                let v = std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))?;
                if v.is_empty() {
                    return Err(SecretError::EmptyEnv(var.clone()));
                }
                v
            }
            SecretSource::File(path) => {
                let mut v = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                // Editors and `echo` add a final newline that is not part of the secret.
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                if v.is_empty() {
                    return Err(SecretError::EmptyFile(path.clone()));
                }
                v
            }
        };
        Ok(Secret(value))
    }
}

/// A secret value. It has no `Display`, and its `Debug` prints a placeholder, so it cannot be
/// logged by accident; the value is reachable only through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn file_secret_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(SecretSource::File(path).load().unwrap().expose(), "abc");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretSource::Env("MAILSHOT_TEST_SURELY_UNSET".into())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("MAILSHOT_TEST_SURELY_UNSET"));
    }
}
