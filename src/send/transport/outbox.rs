//! The outbox: each message's exact bytes as an `.eml` file, and the file name a recipient's
//! files get here and in the preview folder.

use std::path::{Path, PathBuf};

use super::{Accepted, Cause, DeliveryError, TransportSetupError};
use crate::message::Prepared;

/// Writes each message's exact bytes to `<dir>/<row>-<address>.eml`.
pub struct Outbox {
    pub(super) dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: &Path) -> Result<Outbox, TransportSetupError> {
        std::fs::create_dir_all(dir).map_err(|source| TransportSetupError::Outbox {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Outbox {
            dir: dir.to_owned(),
        })
    }

    pub(super) fn write(&self, msg: &Prepared) -> Result<Accepted, DeliveryError> {
        let name = format!("{}.eml", file_stem(&msg.recipient));
        let path = self.dir.join(&name);
        // A new file under a fresh name, then renamed: a reader never sees half a message,
        // and a symlink planted at either name is never written through.
        crate::files::write_replacing(&path, &msg.bytes).map_err(|e| {
            DeliveryError::fatal(
                Cause::Outbox,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        Ok(Accepted {
            code: None,
            text: path.display().to_string(),
            relay: None,
        })
    }
}

/// `<row>-<address>` as a file name, shared by the outbox and the preview folder so the same
/// recipient's files have the same name in both.
pub fn file_stem(r: &crate::recipients::Recipient) -> String {
    format!("{:06}-{}", r.row, safe_file_part(r.address.as_ref()))
}

/// Keeps letters, digits and `@._+-`; anything else becomes `_`. Cut at 100 characters so a
/// long (but valid, up to 254) address cannot exceed the file system's name limit.
fn safe_file_part(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
