//! Reading files the configuration names, never more than a bound; and the saved-state
//! files (`state_dir`): read with a cap, set aside when unusable, written atomically.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::units::ByteSize;

/// Reads a file of at most `limit` bytes, never reading past the limit (a device such as
/// `/dev/zero` ends there too); a larger one is an error that says the limit.
pub(crate) fn read_capped(path: &Path, limit: ByteSize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.0.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.0 {
        return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("larger than {limit}")));
    }
    Ok(bytes)
}

/// A saved-state file's bytes, or `Err(size)` when it is larger than `limit`; never reads
/// more than one byte past the limit.
pub(crate) fn read_state(path: &Path, limit: ByteSize) -> std::io::Result<Result<Vec<u8>, u64>> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit.0 {
        return Ok(Err(size));
    }
    let mut bytes = Vec::new();
    file.take(limit.0.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.0 {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// Moves an unusable saved-state file out of the way (`NAME.json.corrupt` beside it), so
/// it can be looked at and is not read again; returns where it went.
pub(crate) fn set_aside(path: &Path) -> PathBuf {
    let aside = path.with_extension("json.corrupt");
    let _ = std::fs::rename(path, &aside);
    aside
}

/// Writes a temporary file beside `path`, then renames it over `path`: a crash mid-write
/// never leaves a truncated file behind.
pub(crate) async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}
