//! Writing certificate and key files: a temporary file in the same directory, fsynced, then
//! renamed over the old one, so a reader sees the old file or the new one, never half of one.
//! Keys are created 0600 and stay so.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every private key file.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files (public).
pub(crate) const CERT_MODE: u32 = 0o644;

/// Writes `contents` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is filtered by the umask and ignored for an existing file: set it outright.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` 0700 if missing.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Makes an existing key file 0600 if it is readable by others, with a warning.
pub(crate) fn restrict_key(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "key file was readable by others; made 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(KEY_MODE))?;
    }
    Ok(())
}
