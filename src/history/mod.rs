//! Each target's recent history for the status page, bounded and kept across restarts.
//!
//! One task owns every target's [`TargetHistory`]. Probe results reach it from the
//! target's sink (`HistoryHandle::record`, which never waits: a result that does not fit
//! the queue is dropped and logged). Breaker transitions and version changes arrive the
//! same way, as the target's status right after the sink applied a breaker or health
//! event to it (`HistoryHandle::watched`, one target at a time, so nothing here costs
//! more with more targets); the breaker's transition count tells a new transition from a
//! repeated status. The task changes each target's history in place, in a map it shares
//! with the readers: a reader takes a snapshot (the map's `Arc`s, one per target) under a
//! short lock, and a target whose history a snapshot still holds is copied before its
//! next change. So a probe costs the same with ten targets or ten thousand; only a page
//! view walks every target.
//!
//! With `alerting.state_dir`, the history is written to `history.json` there every
//! [`SAVE_EVERY`] while it changes and at shutdown, and read back at start.

mod persist;
mod ring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
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
/// The histories as the task keeps them, for the status page. Cheap to clone (shared).
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
/// Results waiting for the task before new ones are dropped.
const QUEUE: usize = 4096;

/// What the task is told.
#[derive(Debug)]
enum Input {
    Result(Box<Probe>),
    /// A target's breaker and health status, right after it changed.
    Watched {
        target: String,
        watched: Box<Watched>,
    },
    /// The configured targets; the others are forgotten.
    Targets(Vec<String>),
}

/// What the history keeps of one probe result.
#[derive(Debug)]
struct Probe {
    target: String,
    entry: Entry,
    /// The names of the steps the entry times, in order.
    steps: Vec<String>,
}

/// Feeds the history task; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct HistoryHandle {
    tx: mpsc::Sender<Input>,
}

impl HistoryHandle {
    pub fn record(&self, result: &ProbeResult) {
        let probe = Probe {
            target: result.target.clone(),
            entry: Entry::of(result),
            steps: ring::step_names(result).map(str::to_owned).collect(),
        };
        self.send(&result.target, Input::Result(Box::new(probe)));
    }

    /// `target`'s status after a breaker or health event was applied to it.
    pub fn watched(&self, target: &str, watched: Watched) {
        self.send(target, Input::Watched { target: target.to_owned(), watched: Box::new(watched) });
    }

    /// The configured target list changed.
    pub fn targets(&self, names: Vec<String>) {
        // Never dropped for a full queue silently: a stale entry would only linger until
        // the next reload, but say so.
        self.send("", Input::Targets(names));
    }

    fn send(&self, target: &str, input: Input) {
        if self.tx.try_send(input).is_err() && !self.tx.is_closed() {
            tracing::warn!(target_name = %target, "The history is behind; news of a target was not kept.");
        }
    }
}

/// Starts the task, with what `state_dir` holds. It ends when `cancel` fires, after a
/// last write.
pub fn spawn(
    state_dir: Option<PathBuf>,
    cancel: CancellationToken,
) -> (HistoryHandle, HistoryView, JoinHandle<()>) {
    let file = state_dir.map(|d| d.join("history.json"));
    let view = HistoryView(Arc::new(Mutex::new(file.as_deref().map(persist::load).unwrap_or_default())));
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(view.clone(), file, rx, cancel));
    (HistoryHandle { tx }, view, task)
}

async fn run(
    view: HistoryView,
    file: Option<PathBuf>,
    mut rx: mpsc::Receiver<Input>,
    cancel: CancellationToken,
) {
    let mut save = tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unsaved = false;
    loop {
        let changed = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            input = rx.recv() => match input {
                None => break,
                Some(input) => apply(&mut view.lock(), input),
            },
            _ = save.tick() => {
                if unsaved {
                    unsaved = false;
                    write(file.as_deref(), &view.snapshot()).await;
                }
                false
            }
        };
        unsaved |= changed;
    }
    if unsaved {
        write(file.as_deref(), &view.snapshot()).await;
    }
}

/// Applies one input; whether anything changed.
fn apply(histories: &mut Histories, input: Input) -> bool {
    match input {
        Input::Result(p) => {
            let Probe { target, entry, steps } = *p;
            let history = match histories.get_mut(&target) {
                Some(h) => h,
                None => histories.entry(target).or_default(),
            };
            Arc::make_mut(history).add(entry, steps.iter().map(String::as_str));
            true
        }
        Input::Watched { target, watched } => observe_watched(histories, &target, &watched),
        Input::Targets(names) => {
            let before = histories.len();
            histories.retain(|name, _| names.iter().any(|n| n == name));
            histories.len() != before
        }
    }
}

async fn write(file: Option<&std::path::Path>, histories: &Histories) {
    if let Some(path) = file {
        if let Some(bytes) = persist::serialize(histories) {
            persist::save(path, &bytes).await;
        }
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
