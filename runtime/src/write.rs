//! Writing a file whole: under a private name first, then renamed, so that a reader (or a
//! concurrent run) never sees half of it.

use std::path::Path;

/// Writes `bytes` to `path` whole.
pub fn whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension(format!("{}.part", std::process::id()));
    std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, path))
}
