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
    #[error("environment variable {} is not set; export it before running mailshot", EnvName(.0))]
    MissingEnv(String),
    #[error("environment variable {} is empty", EnvName(.0))]
    EmptyEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
}

/// True for a name an environment variable can have in a shell (`[A-Za-z_][A-Za-z0-9_]*`). A
/// `*_env` key holding anything else is almost surely the secret itself, pasted in the wrong
/// place, and is refused without repeating it.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An environment variable's name in a message: shown when it looks like one by convention
/// (capitals, digits, `_`), since a lowercase "name" may be a pasted password.
struct EnvName<'a>(&'a str);

impl fmt::Display for EnvName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_env_name(self.0) && !self.0.chars().any(|c| c.is_ascii_lowercase()) {
            f.write_str(self.0)
        } else {
            f.write_str(
                "<named in campaign.toml; not shown, as it looks like it may be the secret itself>",
            )
        }
    }
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
                warn_if_readable_by_others(path);
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

/// A password or HMAC key file, like a DKIM key, should be readable by its owner only.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "secret file {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
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
    fn a_name_that_may_be_the_secret_is_not_echoed() {
        for pasted in ["hunter2-value", "correcthorse"] {
            let err = SecretSource::Env(pasted.into()).load().unwrap_err();
            assert!(!err.to_string().contains(pasted), "{err}");
        }
        assert!(is_env_name("SMTP_PASSWORD") && is_env_name("_x1"));
        assert!(!is_env_name("p@ss word") && !is_env_name("1ABC") && !is_env_name(""));
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretSource::Env("MAILSHOT_TEST_SURELY_UNSET".into())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("MAILSHOT_TEST_SURELY_UNSET"));
    }
}
