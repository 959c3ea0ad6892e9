//! Each target's recent history for the status page, bounded and kept across restarts.
//!
//! One task owns every target's [`TargetHistory`]. Probe results reach it from the
//! target's sink (`HistoryHandle::record`, which never waits: a result that does not fit
//! the queue is dropped and logged); breaker transitions and version changes it reads
//! from the state snapshots, where the breaker's transition count tells a new transition
//! from a repeated status. Readers take the latest published map without waiting.
//!
//! With `alerting.state_dir`, the history is written to `history.json` there every
//! [`SAVE_EVERY`] while it changes and at shutdown, and read back at start.

mod persist;
mod ring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use persist::MAX_FILE_SIZE;
pub use ring::{
    BreakerChange, Bucket, Entry, TargetHistory, VersionChange, BUCKETS, BUCKET_SECONDS,
    MAX_BYTES_PER_TARGET, RESULTS,
};

use crate::probe::ProbeResult;
use crate::state::Snapshot;
use crate::util::time::unix_now;

/// Every target's history, by name.
pub type Histories = BTreeMap<String, Arc<TargetHistory>>;
/// The latest histories, for the status page.
pub type HistoryView = watch::Receiver<Arc<Histories>>;

/// How often, at most, the history is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// Results waiting for the task before new ones are dropped.
const QUEUE: usize = 4096;

/// Feeds the history task; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct HistoryHandle {
    tx: mpsc::Sender<Box<ProbeResult>>,
}

impl HistoryHandle {
    pub fn record(&self, result: &ProbeResult) {
        let mut slim = result.clone();
        slim.message_gaps = Vec::new();
        if self.tx.try_send(Box::new(slim)).is_err() && !self.tx.is_closed() {
            tracing::warn!(target_name = %result.target, "The history is behind; a result was not kept.");
        }
    }
}

/// Starts the task, with what `state_dir` holds. It ends when `cancel` fires, after a
/// last write.
pub fn spawn(
    state_dir: Option<PathBuf>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    cancel: CancellationToken,
) -> (HistoryHandle, HistoryView, JoinHandle<()>) {
    let file = state_dir.map(|d| d.join("history.json"));
    let histories = file.as_deref().map(persist::load).unwrap_or_default();
    let (tx, rx) = mpsc::channel(QUEUE);
    let (view_tx, view) = watch::channel(Arc::new(histories.clone()));
    let task = tokio::spawn(run(histories, file, rx, snapshots, view_tx, cancel));
    (HistoryHandle { tx }, view, task)
}

async fn run(
    mut histories: Histories,
    file: Option<PathBuf>,
    mut rx: mpsc::Receiver<Box<ProbeResult>>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    view: watch::Sender<Arc<Histories>>,
    cancel: CancellationToken,
) {
    let mut save = tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unsaved = false;
    loop {
        let changed = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            result = rx.recv() => match result {
                None => break,
                Some(r) => {
                    Arc::make_mut(histories.entry(r.target.clone()).or_default()).record(&r);
                    true
                }
            },
            seen = snapshots.changed() => {
                if seen.is_err() {
                    break;
                }
                let snapshot = snapshots.borrow_and_update().clone();
                watch_snapshot(&mut histories, &snapshot)
            }
            _ = save.tick() => {
                if unsaved {
                    unsaved = false;
                    write(file.as_deref(), &histories).await;
                }
                false
            }
        };
        if changed {
            unsaved = true;
            view.send_replace(Arc::new(histories.clone()));
        }
    }
    if unsaved {
        write(file.as_deref(), &histories).await;
    }
}

async fn write(file: Option<&std::path::Path>, histories: &Histories) {
    if let Some(path) = file {
        if let Some(bytes) = persist::serialize(histories) {
            persist::save(path, &bytes).await;
        }
    }
}

/// Takes breaker transitions and version changes from a snapshot, and forgets targets
/// no longer configured. Whether anything changed.
fn watch_snapshot(histories: &mut Histories, snapshot: &Snapshot) -> bool {
    let mut changed = false;
    if !snapshot.targets.is_empty() {
        let before = histories.len();
        histories.retain(|name, _| snapshot.targets.iter().any(|t| t.info.name == *name));
        changed |= histories.len() != before;
    }
    let now = unix_now();
    for t in &snapshot.targets {
        let circuit =
            t.watched.circuit.as_ref().filter(|c| {
                histories.get(&t.info.name).is_none_or(|h| h.circuit_moved(c.state, c.transitions))
            });
        let deployment = t.watched.deployment.as_ref().filter(|d| {
            let (live, expected) = (d.live_version.as_deref(), d.expected_version.as_deref());
            histories.get(&t.info.name).is_none_or(|h| h.versions_moved(live, expected, d.drift))
        });
        if circuit.is_none() && deployment.is_none() {
            continue;
        }
        // Only now a copy, if a reader holds the old one: most snapshots change nothing here.
        let h = Arc::make_mut(histories.entry(t.info.name.clone()).or_default());
        if let Some(c) = circuit {
            h.observe_circuit(c.state, c.transitions, c.since, &c.reason);
        }
        if let Some(d) = deployment {
            h.observe_versions(now, d.live_version.as_deref(), d.expected_version.as_deref(), d.drift);
        }
        changed = true;
    }
    changed
}
