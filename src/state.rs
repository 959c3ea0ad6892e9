//! What the daemon knows about each target, owned by one task.
//!
//! Probe results and configuration changes arrive on a channel; the task folds them into
//! per-target status and publishes an immutable snapshot on a `watch` channel. Readers
//! (`/api/targets`, `/readyz`) take the latest snapshot without waiting on anyone, so the
//! HTTP API never queues behind probe work.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

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

/// Everything the API shows, as of the last change.
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

/// The sending side, cloned into every target task.
#[derive(Debug, Clone)]
pub struct StateHandle {
    tx: mpsc::Sender<Event>,
}

impl StateHandle {
    pub async fn send(&self, event: Event) {
        // The state task only ends after every sender is gone; a failed send means
        // shutdown is under way and the event no longer matters.
        let _ = self.tx.send(event).await;
    }
}

/// Starts the state task. It ends when every `StateHandle` is dropped.
pub fn spawn() -> (StateHandle, watch::Receiver<Arc<Snapshot>>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(async move {
        let mut targets: BTreeMap<String, TargetStatus> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        while let Some(event) = rx.recv().await {
            apply(&mut targets, &mut order, event);
            let snapshot =
                Snapshot { targets: order.iter().filter_map(|n| targets.get(n).cloned()).collect() };
            snap_tx.send_replace(Arc::new(snapshot));
        }
    });
    (StateHandle { tx }, snap_rx)
}

fn apply(targets: &mut BTreeMap<String, TargetStatus>, order: &mut Vec<String>, event: Event) {
    match event {
        Event::Targets(list) => {
            order.clear();
            let mut next = BTreeMap::new();
            for info in list {
                order.push(info.name.clone());
                let status = match targets.remove(&info.name) {
                    Some(mut old) => {
                        old.info = info;
                        old
                    }
                    None => TargetStatus {
                        info,
                        last_result: None,
                        consecutive_failures: 0,
                        recent_failures: VecDeque::new(),
                        probes: Counts::default(),
                        watched: Watched::default(),
                        sessions: None,
                    },
                };
                next.insert(status.info.name.clone(), status);
            }
            *targets = next;
        }
        Event::Result(result) => {
            let Some(status) = targets.get_mut(&result.target) else { return };
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
        Event::Skipped { target, count } => {
            if let Some(status) = targets.get_mut(&target) {
                status.probes.skipped += count;
            }
        }
        Event::Sessions { target, view } => {
            if let Some(status) = targets.get_mut(&target) {
                status.sessions = view;
            }
        }
        Event::Watch { target, event } => {
            if let Some(status) = targets.get_mut(&target) {
                status.watched.apply(event);
            }
        }
    }
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
