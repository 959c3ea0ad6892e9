//! Detector state on disk: written atomically (temporary file, then rename), read back at
//! start. A missing file starts fresh; a corrupt or incompatible one is set aside as
//! `*.corrupt` and logged, never a crash.

use std::path::Path;

use crate::detect::{Detector, DetectorState};

pub fn load(path: &Path, detector: &mut Detector) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %path.display(), "No saved alerting state; baselines start empty.");
            return;
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "Cannot read the alerting state; starting fresh.");
            return;
        }
    };
    let outcome = serde_json::from_str::<DetectorState>(&text)
        .map_err(|e| e.to_string())
        .and_then(|state| detector.restore(state).map_err(|e| e.to_string()));
    match outcome {
        Ok(_) => tracing::info!(file = %path.display(), "Alerting state restored."),
        Err(why) => {
            let aside = path.with_extension("json.corrupt");
            let _ = std::fs::rename(path, &aside);
            tracing::warn!(
                file = %path.display(), moved_to = %aside.display(), error = %why,
                "The saved alerting state is unusable; set it aside and starting fresh."
            );
        }
    }
}

/// Writes serialized state: a temporary file, then a rename over the old one, so a crash
/// mid-write never leaves a truncated state behind.
pub async fn save(path: &Path, json: &[u8]) {
    let result = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension("json.tmp");
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, path).await
    };
    if let Err(e) = result.await {
        tracing::warn!(file = %path.display(), error = %e, "Cannot save the alerting state.");
    }
}
