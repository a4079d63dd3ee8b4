//! Small file-system helpers for the data directory.

use std::io::Write as _;
use std::path::Path;

/// Writes a new file, refusing to overwrite an existing one. Secrets (keys) are readable by
/// the owner only.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
