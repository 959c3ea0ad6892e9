//! What the daemon knows about each target: one status cell per target, updated in place.
//!
//! Producers (the target tasks, the supervisor) apply their news straight to the cell of
//! the target it concerns: a hash lookup and a short lock on that one cell, so the cost of
//! an update does not depend on how many targets there are, and no producer ever queues
//! behind another target's news. The list of cells changes only when the configuration
//! does. Readers (`/api/targets`, `/readyz`) assemble a [`Snapshot`] when they ask, by
//! copying each cell under its own lock; a copy never waits on probe work, only on another
//! copy or update of the same cell, which are both short.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::Serialize;

use crate::probe::{Phase, ProbeResult, Reason};

/// Failures kept per target for `/api/targets`.
pub(crate) const RECENT_FAILURES: usize = 10;

/// A target as configured, for display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetInfo {
    pub name: String,
    /// The URL as written, substitutions unexpanded (it may hide a secret).
    pub url: String,
    pub interval_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureSummary {
    pub started_at: f64,
    pub reason: Option<Reason>,
    pub phase: Option<Phase>,
    pub step: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub success: u64,
    pub failure: u64,
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    #[serde(flatten)]
    pub info: TargetInfo,
    pub last_result: Option<ProbeResult>,
    pub consecutive_failures: u64,
    pub recent_failures: VecDeque<FailureSummary>,
    pub probes: Counts,
    /// Circuit breaker, health checks, deployment, remote breakers.
    #[serde(flatten)]
    pub watched: Watched,
    /// The held sessions of a `session:` target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<crate::session::SessionsView>,
}

impl TargetStatus {
    fn new(info: TargetInfo) -> Self {
        Self {
            info,
            last_result: None,
            consecutive_failures: 0,
            recent_failures: VecDeque::new(),
            probes: Counts::default(),
            watched: Watched::default(),
            sessions: None,
        }
    }
}

/// Everything the API shows, as of the moment it was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub targets: Vec<TargetStatus>,
}

impl Snapshot {
    /// Ready once every configured target has a result.
    pub fn probed(&self) -> usize {
        self.targets.iter().filter(|t| t.last_result.is_some()).count()
    }
}

#[derive(Debug)]
pub enum Event {
    /// The configured target list changed (or was first loaded).
    Targets(Vec<TargetInfo>),
    Result(Box<ProbeResult>),
    Skipped {
        target: String,
        count: u64,
    },
    /// A session target started (where its sessions' status is read from), or a target
    /// stopped holding sessions (`None`).
    Sessions {
        target: String,
        view: Option<crate::session::SessionsView>,
    },
    /// News from the breaker, a health check or the remote-breaker poll of a target.
    Watch {
        target: String,
        event: WatchEvent,
    },
}

/// One target's status, locked on its own.
type Cell = Arc<Mutex<TargetStatus>>;

/// A poisoned cell only means a panic elsewhere mid-update; the status is still usable.
fn lock(cell: &Mutex<TargetStatus>) -> MutexGuard<'_, TargetStatus> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cells, in configuration order and by name.
#[derive(Debug, Default)]
struct Table {
    order: Vec<Cell>,
    by_name: HashMap<String, Cell>,
}

#[derive(Debug, Default)]
struct Shared {
    table: RwLock<Table>,
}

impl Shared {
    /// The cell of `target`, if it is configured. The table's lock is held only for the
    /// lookup, so a reload that swaps the table waits for lookups, never for updates.
    fn cell(&self, target: &str) -> Option<Cell> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).by_name.get(target).cloned()
    }

    fn cells(&self) -> Vec<Cell> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).order.clone()
    }
}

/// The updating side, cloned into every target task.
#[derive(Debug, Clone)]
pub struct StateHandle {
    shared: Arc<Shared>,
}

impl StateHandle {
    /// Applies `event` now. It never waits on another target: the only lock taken is the
    /// cell of the target concerned (and, for a new target list, the table's).
    /// Kept `async` so producers need not care how the state is kept.
    pub async fn send(&self, event: Event) {
        self.apply(event);
    }

    /// The breaker and health part of `target`'s status, if it is configured: one cell.
    pub fn watched(&self, target: &str) -> Option<Watched> {
        self.shared.cell(target).map(|cell| lock(&cell).watched.clone())
    }

    fn apply(&self, event: Event) {
        let (target, update): (String, Update) = match event {
            Event::Targets(list) => return self.replace_targets(list),
            Event::Result(result) => (result.target.clone(), Update::Result(result)),
            Event::Skipped { target, count } => (target, Update::Skipped(count)),
            Event::Sessions { target, view } => (target, Update::Sessions(view)),
            Event::Watch { target, event } => (target, Update::Watch(event)),
        };
        // News of a target no longer configured (a cancelled task's last words) is dropped.
        if let Some(cell) = self.shared.cell(&target) {
            update.apply(&mut lock(&cell));
        }
    }

    /// Installs the new target list, keeping the status of the targets that stay.
    fn replace_targets(&self, list: Vec<TargetInfo>) {
        let mut table = self.shared.table.write().unwrap_or_else(PoisonError::into_inner);
        let mut old = std::mem::take(&mut table.by_name);
        let mut next =
            Table { order: Vec::with_capacity(list.len()), by_name: HashMap::with_capacity(list.len()) };
        for info in list {
            let cell = match old.remove(&info.name) {
                Some(cell) => {
                    lock(&cell).info = info.clone();
                    cell
                }
                None => Arc::new(Mutex::new(TargetStatus::new(info.clone()))),
            };
            next.order.push(cell.clone());
            next.by_name.insert(info.name, cell);
        }
        *table = next;
    }
}

/// One event, once its target is known.
enum Update {
    Result(Box<ProbeResult>),
    Skipped(u64),
    Sessions(Option<crate::session::SessionsView>),
    Watch(WatchEvent),
}

impl Update {
    fn apply(self, status: &mut TargetStatus) {
        match self {
            Update::Result(result) => {
                if result.success {
                    status.probes.success += 1;
                    status.consecutive_failures = 0;
                } else {
                    status.probes.failure += 1;
                    status.consecutive_failures += 1;
                    if status.recent_failures.len() == RECENT_FAILURES {
                        status.recent_failures.pop_back();
                    }
                    status.recent_failures.push_front(FailureSummary {
                        started_at: result.started_at,
                        reason: result.reason,
                        phase: result.phase,
                        step: result.step.clone(),
                        message: result.message.clone(),
                    });
                }
                status.last_result = Some(*result);
            }
            Update::Skipped(count) => status.probes.skipped += count,
            Update::Sessions(view) => status.sessions = view,
            Update::Watch(event) => status.watched.apply(event),
        }
    }
}

/// The reading side, for the HTTP API. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct StateView {
    shared: Arc<Shared>,
}

impl StateView {
    /// Every target's status now, in configuration order.
    pub fn latest(&self) -> Snapshot {
        Snapshot { targets: self.shared.cells().iter().map(|c| lock(c).clone()).collect() }
    }

    /// (targets with a result, targets configured), without copying any status.
    pub fn readiness(&self) -> (usize, usize) {
        let cells = self.shared.cells();
        let probed = cells.iter().filter(|c| lock(c).last_result.is_some()).count();
        (probed, cells.len())
    }
}

/// The state, empty until the first target list arrives: a handle for the producers and
/// a view for the readers.
pub fn new() -> (StateHandle, StateView) {
    let shared = Arc::new(Shared::default());
    (StateHandle { shared: shared.clone() }, StateView { shared })
}

/// What is watched beside a target's probes, as `/api/targets` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Watched {
    /// The target's circuit breaker (absent until its task has started).
    pub circuit: Option<crate::breaker::CircuitStatus>,
    /// The last result of each health check, in configuration order.
    pub health: Vec<crate::health::HealthResult>,
    /// Live and expected version, from the health check with `version_path`.
    pub deployment: Option<crate::health::Deployment>,
    pub remote_breakers: Option<crate::health::RemoteStatus>,
    /// The configured health checks, to order and prune `health`; and whether a version
    /// and remote breakers are read. A cancelled task's late news is dropped by these.
    #[serde(skip)]
    checks: Vec<String>,
    #[serde(skip)]
    reports_version: bool,
    #[serde(skip)]
    remote: bool,
}

/// One piece of news for [`Watched`].
#[derive(Debug)]
pub enum WatchEvent {
    /// The target's task started with these health checks and this remote-breaker poll.
    Started {
        checks: Vec<String>,
        reports_version: bool,
        remote_breakers: bool,
    },
    Circuit(crate::breaker::CircuitStatus),
    Health {
        result: Box<crate::health::HealthResult>,
        deployment: Option<crate::health::Deployment>,
    },
    Remote(crate::health::RemoteStatus),
}

impl Watched {
    fn apply(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Started { checks, reports_version, remote_breakers } => {
                self.health.retain(|r| checks.contains(&r.check));
                if !reports_version {
                    self.deployment = None;
                }
                if !remote_breakers {
                    self.remote_breakers = None;
                }
                self.checks = checks;
                self.reports_version = reports_version;
                self.remote = remote_breakers;
            }
            WatchEvent::Circuit(status) => self.circuit = Some(status),
            WatchEvent::Health { result, deployment } => {
                if !self.checks.contains(&result.check) {
                    return;
                }
                if deployment.is_some() && self.reports_version {
                    self.deployment = deployment;
                }
                match self.health.iter_mut().find(|r| r.check == result.check) {
                    Some(slot) => *slot = *result,
                    None => {
                        self.health.push(*result);
                        let order = &self.checks;
                        self.health.sort_by_key(|r| order.iter().position(|c| *c == r.check));
                    }
                }
            }
            WatchEvent::Remote(status) if self.remote => self.remote_breakers = Some(status),
            WatchEvent::Remote(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn infos(n: usize) -> Vec<TargetInfo> {
        (0..n)
            .map(|i| TargetInfo { name: format!("t{i}"), url: "ws://x/".into(), interval_seconds: 1.0 })
            .collect()
    }

    fn result(target: &str, success: bool) -> ProbeResult {
        let mut r = ProbeResult::new(target);
        r.success = success;
        r
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_update_never_waits_for_anyone() {
        // Nothing else runs on this thread: a queue with a consumer task would fill up
        // and the sender would wait.
        let (state, view) = new();
        state.send(Event::Targets(infos(1))).now_or_never().unwrap();
        for _ in 0..5000 {
            state.send(Event::Result(Box::new(result("t0", true)))).now_or_never().unwrap();
        }
        assert_eq!(view.latest().targets[0].probes.success, 5000);
        assert_eq!(view.readiness(), (1, 1));
    }

    #[test]
    fn reload_keeps_the_status_of_targets_that_stay_and_drops_news_of_the_others() {
        let (state, view) = new();
        state.apply(Event::Targets(infos(3)));
        state.apply(Event::Result(Box::new(result("t1", false))));
        state.apply(Event::Skipped { target: "t2".into(), count: 2 });
        let mut next = infos(3);
        next.remove(0);
        next[0].url = "ws://y/".into();
        state.apply(Event::Targets(next));
        state.apply(Event::Result(Box::new(result("t0", true))));
        let snap = view.latest();
        let names: Vec<_> = snap.targets.iter().map(|t| t.info.name.as_str()).collect();
        assert_eq!(names, ["t1", "t2"]);
        assert_eq!(snap.targets[0].info.url, "ws://y/");
        assert_eq!(snap.targets[0].probes.failure, 1);
        assert_eq!(snap.targets[0].consecutive_failures, 1);
        assert_eq!(snap.targets[0].recent_failures.len(), 1);
        assert_eq!(snap.targets[1].probes.skipped, 2);
        assert_eq!(view.readiness(), (1, 2));
    }

    /// Seconds per update with `targets` configured: the best of three rounds.
    fn per_update(targets: usize) -> f64 {
        let (state, _view) = new();
        state.apply(Event::Targets(infos(targets)));
        let names: Vec<String> = (0..targets).map(|i| format!("t{i}")).collect();
        let updates = 2000;
        (0..3)
            .map(|_| {
                let started = std::time::Instant::now();
                for k in 0..updates {
                    let r = result(&names[(k * 7919) % targets], k % 3 != 0);
                    state.apply(Event::Result(Box::new(r)));
                }
                started.elapsed().as_secs_f64() / updates as f64
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn an_update_costs_the_same_with_ten_thousand_targets_as_with_ten() {
        let (small, large) = (per_update(10), per_update(10_000));
        // Flat means within noise and cache effects; a cost in proportion to the targets
        // would be about 1,000 times as much.
        assert!(large < small * 8.0 + 2e-6, "{:.2} µs vs {:.2} µs", large * 1e6, small * 1e6);
    }
}
