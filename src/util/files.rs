//! Reading files the configuration names, never more than a bound.

use std::io::Read as _;
use std::path::Path;

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
