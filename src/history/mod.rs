//! Each target's recent history for the status page, bounded and kept across restarts.
//!
//! Every target's [`TargetHistory`] lives in one map shared by the target tasks, which
//! write into it, and the status page, which reads it. A probe result is added by the
//! target's sink (`HistoryHandle::record`) in its own task, under a lock held for one
//! ring push; breaker transitions and version changes arrive the same way, as the
//! target's status right after the sink applied a breaker or health event to it
//! (`HistoryHandle::watched`); the breaker's transition count tells a new transition from
//! a repeated status. So a probe costs the same with ten targets or ten thousand, and
//! wakes no other task. A page view takes a snapshot (one `Arc` per target, under the
//! lock); a target whose history a snapshot still holds is copied before its next change.
//!
//! With `alerting.state_dir`, the history is written to `history.json` there every
//! [`SAVE_EVERY`] while it changes and at shutdown, and read back at start.

mod persist;
mod ring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use persist::MAX_FILE_SIZE;
pub use ring::{
    BreakerChange, Bucket, Entry, TargetHistory, VersionChange, BUCKETS, BUCKET_SECONDS,
    MAX_BYTES_PER_TARGET, RESULTS,
};

use crate::probe::ProbeResult;
use crate::state::Watched;
use crate::util::time::unix_now;

/// Every target's history, by name.
pub type Histories = BTreeMap<String, Arc<TargetHistory>>;
/// The histories, shared by the writers and the status page. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HistoryView(Arc<Mutex<Histories>>);

impl HistoryView {
    /// Every target's history as it is now. Costs one `Arc` per target, under the lock.
    pub fn snapshot(&self) -> Histories {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histories> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often, at most, the history is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Feeds the history; cheap to clone, never waits on another task.
#[derive(Debug, Clone)]
pub struct HistoryHandle {
    view: HistoryView,
    /// Set by every change, cleared by the write that saves it.
    unsaved: Arc<AtomicBool>,
}

impl HistoryHandle {
    pub fn record(&self, result: &ProbeResult) {
        let entry = Entry::of(result);
        let mut histories = self.view.lock();
        let history = match histories.get_mut(&result.target) {
            Some(h) => h,
            None => histories.entry(result.target.clone()).or_default(),
        };
        Arc::make_mut(history).add(entry, ring::step_names(result));
        drop(histories);
        self.unsaved.store(true, Ordering::Relaxed);
    }

    /// `target`'s status after a breaker or health event was applied to it.
    pub fn watched(&self, target: &str, watched: Watched) {
        if observe_watched(&mut self.view.lock(), target, &watched) {
            self.unsaved.store(true, Ordering::Relaxed);
        }
    }

    /// The configured target list changed: the others are forgotten.
    pub fn targets(&self, names: Vec<String>) {
        let mut histories = self.view.lock();
        let before = histories.len();
        histories.retain(|name, _| names.iter().any(|n| n == name));
        if histories.len() != before {
            self.unsaved.store(true, Ordering::Relaxed);
        }
    }
}

/// Loads what `state_dir` holds and starts the task that writes it back. The task ends
/// when `cancel` fires, after a last write.
pub fn spawn(
    state_dir: Option<PathBuf>,
    cancel: CancellationToken,
) -> (HistoryHandle, HistoryView, JoinHandle<()>) {
    let file = state_dir.map(|d| d.join("history.json"));
    let view = HistoryView(Arc::new(Mutex::new(file.as_deref().map(persist::load).unwrap_or_default())));
    let handle = HistoryHandle { view: view.clone(), unsaved: Arc::default() };
    let task = tokio::spawn(save_while_changing(handle.clone(), file, cancel));
    (handle, view, task)
}

async fn save_while_changing(history: HistoryHandle, file: Option<PathBuf>, cancel: CancellationToken) {
    let Some(file) = file else { return };
    let mut save = tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = save.tick() => {
                if history.unsaved.swap(false, Ordering::Relaxed) {
                    write(&file, &history.view.snapshot()).await;
                }
            }
        }
    }
    if history.unsaved.swap(false, Ordering::Relaxed) {
        write(&file, &history.view.snapshot()).await;
    }
}

async fn write(path: &std::path::Path, histories: &Histories) {
    if let Some(bytes) = persist::serialize(histories) {
        persist::save(path, &bytes).await;
    }
}

/// Takes a breaker transition or version change from a target's status. Whether
/// anything changed.
fn observe_watched(histories: &mut Histories, target: &str, watched: &Watched) -> bool {
    let circuit = watched
        .circuit
        .as_ref()
        .filter(|c| histories.get(target).is_none_or(|h| h.circuit_moved(c.state, c.transitions)));
    let deployment = watched.deployment.as_ref().filter(|d| {
        let (live, expected) = (d.live_version.as_deref(), d.expected_version.as_deref());
        histories.get(target).is_none_or(|h| h.versions_moved(live, expected, d.drift))
    });
    if circuit.is_none() && deployment.is_none() {
        return false;
    }
    // Only now a copy, if a reader holds the old one: most events change nothing here.
    let h = Arc::make_mut(histories.entry(target.to_owned()).or_default());
    if let Some(c) = circuit {
        h.observe_circuit(c.state, c.transitions, c.since, &c.reason);
    }
    if let Some(d) = deployment {
        h.observe_versions(unix_now(), d.live_version.as_deref(), d.expected_version.as_deref(), d.drift);
    }
    true
}
