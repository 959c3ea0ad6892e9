//! Alerts: their identity, their lifecycle (inactive → pending → firing → resolved) and
//! the numbers and sentences that explain them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::{RuleTiming, Severity};
use crate::probe::Phase;

crate::label_enum! {
    /// What is wrong. `as_str` is the `alertname` label.
    pub enum AlertKind("alertname") {
        /// Several probes in a row failed.
        ProbeFailing => "ProbeFailing",
        /// A phase or step got slower than its baseline.
        LatencyRegression => "LatencyRegression",
        /// Probes time out more often than in the baseline.
        TimeoutRegression => "TimeoutRegression",
        /// The circuit breaker to the target is open (an external signal).
        CircuitOpen => "CircuitOpen",
        /// The target does not run the expected deployment (an external signal).
        DeploymentDrift => "DeploymentDrift",
        /// Held sessions end more often than in the baseline.
        SessionsDropping => "SessionsDropping",
        /// Fewer sessions are open than the target's `count`.
        SessionsBelowConfigured => "SessionsBelowConfigured",
        /// Protocol ping round trips on held sessions got slower than their baseline.
        SessionPingRTTRegression => "SessionPingRTTRegression",
        /// Heartbeat round trips on held sessions got slower than their baseline.
        SessionHeartbeatRTTRegression => "SessionHeartbeatRTTRegression",
    }
}

crate::label_enum! {
    /// A condition the detector cannot see in probe results and is told about instead;
    /// its label is the alert's `alertname`.
    pub enum Signal("condition") {
        /// Fed by the circuit breaker.
        CircuitOpen => "CircuitOpen",
        /// Fed by the deployment check.
        DeploymentDrift => "DeploymentDrift",
    }
}

impl Signal {
    pub(crate) const fn kind(self) -> AlertKind {
        match self {
            Signal::CircuitOpen => AlertKind::CircuitOpen,
            Signal::DeploymentDrift => AlertKind::DeploymentDrift,
        }
    }
}

impl From<Signal> for AlertKind {
    fn from(s: Signal) -> Self {
        s.kind()
    }
}

/// What part of a target an alert is about, besides the target itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A connection phase: the `phase` label.
    Phase(Phase),
    /// A configured scenario step: the `step` label.
    Step(String),
}

impl Subject {
    /// The label name and value.
    pub fn label(&self) -> (&'static str, &str) {
        match self {
            Subject::Phase(p) => ("phase", p.as_str()),
            Subject::Step(name) => ("step", name),
        }
    }

    /// `phase:handshake` or `step:agent_completed`, for the state file.
    pub(crate) fn key(&self) -> String {
        let (kind, name) = self.label();
        format!("{kind}:{name}")
    }

    pub(crate) fn from_key(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("phase", name) => Phase::from_label(name).map(Subject::Phase),
            ("step", name) => Some(Subject::Step(name.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Subject {
    /// `handshake`, `step agent_completed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Phase(p) => f.write_str(p.as_str()),
            Subject::Step(name) => write!(f, "step {name}"),
        }
    }
}

/// The identity of an alert: one per (alertname, target, phase or step).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AlertKey {
    pub kind: AlertKind,
    pub target: String,
    pub subject: Option<Subject>,
}

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition is false; such alerts are not listed.
    Inactive,
    /// The condition is true but has not been for the alert's `for` duration.
    Pending,
    /// The condition has held for `for`: notify.
    Firing,
    /// A firing alert whose condition has been false for `resolve_after`: notify once;
    /// the alert is then inactive.
    Resolved,
}

/// The numbers behind an alert, for annotations and dashboards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Latency: the recent quantile in seconds. Timeouts: the recent rate (0 to 1).
    /// ProbeFailing: consecutive failures. Signals: 1 when true, 0 when false.
    /// SessionsDropping: disconnects per session-hour held. SessionsBelowConfigured: the
    /// sessions open (the threshold is the configured count). Session round trips: as
    /// latency.
    pub value: f64,
    /// The same statistic over the baseline window, where there is one.
    pub baseline: Option<f64>,
    /// Where the condition turns, given the baseline: the trigger threshold while the alert
    /// is inactive, the (lower) resolve threshold once it is pending or firing.
    pub threshold: Option<f64>,
    /// Samples `value` is computed from (recent probes or phase timings).
    pub samples: u64,
    /// Samples `baseline` is computed from.
    pub baseline_samples: u64,
    /// Events counted among `samples`: timeouts, or failed probes for ProbeFailing.
    pub events: Option<u64>,
    /// Events counted among `baseline_samples`.
    pub baseline_events: Option<u64>,
    /// Length of the recent window in seconds, where there is one.
    pub window_seconds: Option<f64>,
}

/// An alert as the delivery code needs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub key: AlertKey,
    pub severity: Severity,
    pub state: AlertState,
    /// When the condition became true (Unix seconds): Alertmanager's `startsAt`.
    pub active_since: f64,
    /// When the alert started firing, if it has.
    pub fired_at: Option<f64>,
    /// When it resolved (only in a transition to `Resolved`): Alertmanager's `endsAt`.
    pub resolved_at: Option<f64>,
    /// One line, e.g. "handshake latency of staging-agent regressed".
    pub summary: String,
    /// The numbers, e.g. "p95 handshake 1.8s vs baseline 210ms over the last 10m, ...".
    pub description: String,
    /// The same numbers, raw; `None` for an alert with nothing to measure.
    pub measurement: Option<Measurement>,
}

impl Alert {
    /// `alertname`, `target`, `severity` and `phase` or `step`, in that order.
    pub(crate) fn labels(&self) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("alertname", self.key.kind.as_str().to_owned()),
            ("target", self.key.target.clone()),
            ("severity", self.severity.as_str().to_owned()),
        ];
        if let Some(subject) = &self.key.subject {
            let (name, value) = subject.label();
            labels.push((name, value.to_owned()));
        }
        labels
    }
}

/// A change of an alert's state, with the alert as it is after the change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub from: AlertState,
    pub to: AlertState,
    /// Unix seconds.
    pub at: f64,
    pub alert: Alert,
}

impl Transition {
    /// Whether this change is one to notify about: firing or resolved. A pending alert
    /// that clears before its `for` goes back to inactive silently.
    pub fn notifies(&self) -> bool {
        matches!(self.to, AlertState::Firing | AlertState::Resolved)
    }
}

/// The words and numbers of the latest evaluation of an alert's condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Finding {
    pub(crate) summary: String,
    pub(crate) description: String,
    pub(crate) measurement: Option<Measurement>,
}

/// One evaluation of a condition.
#[derive(Clone, Debug)]
pub(crate) struct Evaluation {
    pub(crate) condition: bool,
    pub(crate) finding: Finding,
}

/// The lifecycle of one alert that is pending or firing (inactive alerts are not stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub(crate) enum Life {
    Pending { since: f64 },
    Firing { since: f64, fired_at: f64, clear_since: Option<f64> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Lifecycle {
    pub(crate) life: Life,
    pub(crate) finding: Finding,
}

impl Lifecycle {
    pub(crate) fn is_firing(&self) -> bool {
        matches!(self.life, Life::Firing { .. })
    }

    pub(crate) fn state(&self) -> AlertState {
        match self.life {
            Life::Pending { .. } => AlertState::Pending,
            Life::Firing { .. } => AlertState::Firing,
        }
    }

    pub(crate) fn alert(&self, key: AlertKey, severity: Severity) -> Alert {
        let (active_since, fired_at) = match self.life {
            Life::Pending { since } => (since, None),
            Life::Firing { since, fired_at, .. } => (since, Some(fired_at)),
        };
        Alert {
            key,
            severity,
            state: self.state(),
            active_since,
            fired_at,
            resolved_at: None,
            summary: self.finding.summary.clone(),
            description: self.finding.description.clone(),
            measurement: self.finding.measurement.clone(),
        }
    }
}

/// Advances one alert's lifecycle by an evaluation at `now`; `slot` is `None` while the
/// alert is inactive. Returns the transition, if any.
pub(crate) fn step(
    slot: &mut Option<Lifecycle>,
    key: &AlertKey,
    timing: &RuleTiming,
    eval: Evaluation,
    now: f64,
) -> Option<Transition> {
    let condition = eval.condition && timing.enabled;
    let transition = |from, lc: &Lifecycle| {
        let mut alert = lc.alert(key.clone(), timing.severity);
        if from == AlertState::Firing && alert.state == AlertState::Firing {
            // Only reached for resolution.
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now);
        }
        Transition { from, to: alert.state, at: now, alert }
    };
    match slot {
        None if !condition => None,
        None => {
            let life = if timing.for_ <= 0.0 {
                Life::Firing { since: now, fired_at: now, clear_since: None }
            } else {
                Life::Pending { since: now }
            };
            let lc = slot.insert(Lifecycle { life, finding: eval.finding });
            Some(transition(AlertState::Inactive, lc))
        }
        Some(lc) => {
            lc.finding = eval.finding;
            match lc.life {
                Life::Pending { since } if condition => {
                    if now - since < timing.for_ {
                        return None;
                    }
                    lc.life = Life::Firing { since, fired_at: now, clear_since: None };
                    Some(transition(AlertState::Pending, lc))
                }
                Life::Pending { .. } => {
                    let mut t = transition(AlertState::Pending, lc);
                    t.to = AlertState::Inactive;
                    t.alert.state = AlertState::Inactive;
                    *slot = None;
                    Some(t)
                }
                Life::Firing { ref mut clear_since, .. } => {
                    if condition {
                        *clear_since = None;
                        return None;
                    }
                    let cleared = *clear_since.get_or_insert(now);
                    if now - cleared < timing.resolve_after {
                        return None;
                    }
                    let t = transition(AlertState::Firing, lc);
                    *slot = None;
                    Some(t)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_through_their_keys() {
        for s in [Subject::Phase(Phase::FirstMessage), Subject::Step("agent_completed".into())] {
            assert_eq!(Subject::from_key(&s.key()), Some(s));
        }
        assert_eq!(Subject::from_key("phase:teleport"), None);
        assert_eq!(AlertKind::from_label("CircuitOpen"), Some(AlertKind::CircuitOpen));
    }
}
