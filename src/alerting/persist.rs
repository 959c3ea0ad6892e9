//! Detector state on disk: written atomically (temporary file, then rename), read back at
//! start. A missing file starts fresh; a corrupt, incompatible or oversized one is set
//! aside as `*.corrupt` and logged, never a crash.

use std::path::Path;

use crate::detect::{Detector, DetectorState};
use crate::util::units::ByteSize;

/// The largest state file read back. A month of baselines for a few hundred targets is a
/// few MiB; anything past this is not ours, and reading it whole could exhaust memory.
pub(crate) const MAX_STATE_SIZE: ByteSize = ByteSize::mib(64);

pub fn load(path: &Path, detector: &mut Detector) {
    let text = match crate::util::files::read_state(path, MAX_STATE_SIZE) {
        Ok(Ok(t)) => t,
        Ok(Err(size)) => {
            set_aside(path, &format!("the file is {size} bytes, more than the {MAX_STATE_SIZE} read back"));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %path.display(), "No saved alerting state; baselines start empty.");
            return;
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "Cannot read the alerting state; starting fresh.");
            return;
        }
    };
    let outcome = serde_json::from_slice::<DetectorState>(&text)
        .map_err(|e| e.to_string())
        .and_then(|state| detector.restore(state).map_err(|e| e.to_string()));
    match outcome {
        Ok(_) => tracing::info!(file = %path.display(), "Alerting state restored."),
        Err(why) => set_aside(path, &why),
    }
}

fn set_aside(path: &Path, why: &str) {
    let aside = crate::util::files::set_aside(path);
    tracing::warn!(
        file = %path.display(), moved_to = %aside.display(), error = %why,
        "The saved alerting state is unusable; set it aside and starting fresh."
    );
}

/// Writes serialized state: a temporary file, then a rename over the old one, so a crash
/// mid-write never leaves a truncated state behind.
pub(crate) async fn save(path: &Path, json: &[u8]) {
    if let Err(e) = crate::util::files::write_atomically(path, json).await {
        tracing::warn!(file = %path.display(), error = %e, "Cannot save the alerting state.");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detect::DetectorConfig;

    /// The process's peak resident set (`VmHWM`), in KiB.
    fn peak_rss_kib() -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn an_oversized_state_file_is_set_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("detector.json");
        // Sparse: a gigabyte on paper, nothing on disk; reading it whole took a gigabyte.
        std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
        let peak_before = peak_rss_kib();
        load(&path, &mut Detector::new(DetectorConfig::default()));
        let grew = peak_rss_kib() - peak_before;
        assert!(grew < 256 << 10, "peak RSS grew by {grew} KiB");
        assert!(!path.exists());
        assert_eq!(std::fs::metadata(dir.path().join("detector.json.corrupt")).unwrap().len(), 1 << 30);

        // A file of exactly the limit is still read.
        std::fs::File::create(&path).unwrap().set_len(MAX_STATE_SIZE.0).unwrap();
        assert!(
            matches!(crate::util::files::read_state(&path, MAX_STATE_SIZE), Ok(Ok(bytes)) if bytes.len() as u64 == MAX_STATE_SIZE.0)
        );
    }
}
