//! The history file in `state_dir`: written atomically (a temporary file, then a rename),
//! read back at start. A missing file starts empty; an unreadable, corrupt or oversized
//! one is set aside as `history.json.corrupt` and logged, never fatal.

use std::path::Path;

use super::{Histories, TargetHistory};
use crate::util::units::ByteSize;

/// The largest history file written or read back: a thousand targets' typical history
/// is about 20 MiB of JSON; past this it is not ours, and reading it whole could exhaust
/// memory.
pub const MAX_FILE_SIZE: ByteSize = ByteSize::mib(64);

/// The file's contents as saved: a version, so a future layout is set aside, not misread.
#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    version: u32,
    targets: std::collections::BTreeMap<String, TargetHistory>,
}

const VERSION: u32 = 1;

/// The histories saved at `path`, or none.
pub fn load(path: &Path) -> Histories {
    let bytes = match crate::util::files::read_state(path, MAX_FILE_SIZE) {
        Ok(Ok(b)) => b,
        Ok(Err(size)) => {
            set_aside(path, &format!("the file is {size} bytes, more than the {MAX_FILE_SIZE} read back"));
            return Histories::new();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %path.display(), "No saved history; the status page starts empty.");
            return Histories::new();
        }
        Err(e) => {
            set_aside(path, &e.to_string());
            return Histories::new();
        }
    };
    match serde_json::from_slice::<File>(&bytes) {
        Ok(file) if file.version == VERSION => {
            tracing::info!(file = %path.display(), targets = file.targets.len(), "History restored.");
            file.targets
                .into_iter()
                .map(|(name, mut h)| {
                    h.clamp();
                    (name, std::sync::Arc::new(h))
                })
                .collect()
        }
        Ok(file) => {
            set_aside(path, &format!("version {} is not {VERSION}", file.version));
            Histories::new()
        }
        Err(e) => {
            set_aside(path, &e.to_string());
            Histories::new()
        }
    }
}

/// The bytes to write, or `None` (logged) when they would not be read back.
pub fn serialize(histories: &Histories) -> Option<Vec<u8>> {
    let targets = histories.iter().map(|(k, v)| (k.clone(), TargetHistory::clone(v))).collect();
    match serde_json::to_vec(&File { version: VERSION, targets }) {
        Ok(bytes) if bytes.len() as u64 <= MAX_FILE_SIZE.0 => Some(bytes),
        Ok(bytes) => {
            tracing::warn!(
                bytes = bytes.len(),
                "The history is too large to save; it is kept in memory only."
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot serialize the history.");
            None
        }
    }
}

fn set_aside(path: &Path, why: &str) {
    let aside = crate::util::files::set_aside(path);
    tracing::warn!(
        file = %path.display(), moved_to = %aside.display(), error = %why,
        "The saved history is unusable; set it aside and starting empty."
    );
}

/// Writes a temporary file, then renames it over the old one: a crash mid-write never
/// leaves a truncated history.
pub async fn save(path: &Path, bytes: &[u8]) {
    if let Err(e) = crate::util::files::write_atomically(path, bytes).await {
        tracing::warn!(file = %path.display(), error = %e, "Cannot save the history.");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_history_reads_back_and_a_bad_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let mut h = TargetHistory::default();
        let mut r = crate::probe::ProbeResult::new("a");
        r.started_at = 100.0;
        r.success = false;
        r.message = Some("<b>no</b>".into());
        h.record(&r);
        let mut all = Histories::new();
        all.insert("a".into(), std::sync::Arc::new(h));
        std::fs::write(&path, serialize(&all).unwrap()).unwrap();
        assert_eq!(load(&path), all);

        std::fs::write(&path, b"{\"version\": 1, \"targets\": {\"a\": 7}}").unwrap();
        assert!(load(&path).is_empty());
        assert!(!path.exists());
        assert!(dir.path().join("history.json.corrupt").exists());

        std::fs::File::create(&path).unwrap().set_len(MAX_FILE_SIZE.0 + 1).unwrap();
        assert!(load(&path).is_empty());
        assert!(!path.exists());
    }
}
