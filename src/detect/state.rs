//! The detector's state as a serializable value, so that a restart does not forget the
//! baseline or re-notify firing alerts.
//!
//! Phases, reasons, alert kinds and subjects are stored by their stable names and parsed
//! leniently on restore: a name this build does not know is skipped with a note, never an
//! error. Only an unknown `version` refuses the whole state.

use serde::{Deserialize, Serialize};

use super::alert::{AlertKind, Lifecycle, Signal, Subject};
use super::sessions::SessionState;
use super::target::{FailureInfo, SignalState, Streak, TargetState};
use super::window::{Counts, Sketch, Windowed};
use super::Detector;
use crate::probe::{Phase, Reason};

/// The version [`Detector::snapshot`] writes and [`Detector::restore`] reads. Bump it when
/// a change makes older states unreadable (e.g. different sketch parameters).
pub(crate) const STATE_VERSION: u32 = 1;

/// Everything a [`Detector`] knows, to be serialized (e.g. as JSON) and written atomically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DetectorState {
    pub(crate) version: u32,
    /// Bucket widths the windows were filled with; data is only restored into a detector
    /// configured with the same widths.
    recent_bucket_seconds: f64,
    baseline_bucket_seconds: f64,
    #[serde(default)]
    targets: Vec<TargetSnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TargetSnapshot {
    name: String,
    #[serde(default)]
    series: Vec<SeriesSnapshot>,
    #[serde(default)]
    probes: Windowed<Counts>,
    #[serde(default)]
    streak: Streak,
    #[serde(default)]
    last_failure: Option<FailureSnapshot>,
    #[serde(default)]
    last_timeout: Option<FailureSnapshot>,
    #[serde(default)]
    signals: Vec<SignalSnapshot>,
    #[serde(default)]
    alerts: Vec<AlertSnapshot>,
    /// What held sessions reported; absent for other targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sessions: Option<SessionState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeriesSnapshot {
    /// `phase:handshake` or `step:agent_completed`.
    subject: String,
    window: Windowed<Sketch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureSnapshot {
    reason: String,
    phase: Option<String>,
    step: Option<String>,
    http_status: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignalSnapshot {
    signal: String,
    active: bool,
    detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AlertSnapshot {
    alertname: String,
    subject: Option<String>,
    lifecycle: Lifecycle,
}

/// A state that cannot be restored at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RestoreError {
    #[error("detector state version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
}

/// What a restore did, for the caller to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RestoreReport {
    /// Targets restored, including ones the detector has not seen yet.
    pub targets: usize,
    /// Parts of the state that were skipped, one sentence each.
    pub notes: Vec<String>,
}

impl FailureSnapshot {
    fn of(f: &FailureInfo) -> Self {
        Self {
            reason: f.reason.as_str().to_owned(),
            phase: f.phase.map(|p| p.as_str().to_owned()),
            step: f.step.clone(),
            http_status: f.http_status,
        }
    }

    fn info(&self) -> Option<FailureInfo> {
        Some(FailureInfo {
            reason: Reason::from_label(&self.reason)?,
            phase: self.phase.as_deref().and_then(Phase::from_label),
            step: self.step.clone(),
            http_status: self.http_status,
        })
    }
}

impl Detector {
    /// Everything the detector knows, for the caller to persist.
    pub(crate) fn snapshot(&self) -> DetectorState {
        let targets = self
            .targets
            .iter()
            .map(|(name, t)| TargetSnapshot {
                name: name.clone(),
                series: t
                    .timings
                    .iter()
                    .map(|(subject, w)| SeriesSnapshot { subject: subject.key(), window: w.clone() })
                    .collect(),
                probes: t.probes.clone(),
                streak: t.streak,
                last_failure: t.last_failure.as_ref().map(FailureSnapshot::of),
                last_timeout: t.last_timeout.as_ref().map(FailureSnapshot::of),
                signals: t
                    .signals
                    .iter()
                    .map(|(signal, s)| SignalSnapshot {
                        signal: signal.kind().as_str().to_owned(),
                        active: s.active,
                        detail: s.detail.clone(),
                    })
                    .collect(),
                sessions: t.sessions.is_session_target().then(|| t.sessions.clone()),
                alerts: t
                    .alerts
                    .iter()
                    .map(|((kind, subject), lc)| AlertSnapshot {
                        alertname: kind.as_str().to_owned(),
                        subject: subject.as_ref().map(Subject::key),
                        lifecycle: lc.clone(),
                    })
                    .collect(),
            })
            .collect();
        DetectorState {
            version: STATE_VERSION,
            recent_bucket_seconds: self.layout.recent_bucket,
            baseline_bucket_seconds: self.layout.baseline_bucket,
            targets,
        }
    }

    /// Replaces what the detector knows with `state`. Targets unknown to the caller are
    /// kept (call [`Detector::retain_targets`] afterwards); anything this build cannot
    /// read is skipped and noted in the report.
    pub(crate) fn restore(&mut self, state: DetectorState) -> Result<RestoreReport, RestoreError> {
        if state.version != STATE_VERSION {
            return Err(RestoreError::UnsupportedVersion { found: state.version, supported: STATE_VERSION });
        }
        let mut notes = Vec::new();
        let same_buckets = state.recent_bucket_seconds == self.layout.recent_bucket
            && state.baseline_bucket_seconds == self.layout.baseline_bucket;
        if !same_buckets {
            notes.push(format!(
                "the saved windows use {}s/{}s buckets and the configuration {}s/{}s: their data was dropped",
                state.recent_bucket_seconds,
                state.baseline_bucket_seconds,
                self.layout.recent_bucket,
                self.layout.baseline_bucket
            ));
        }
        let mut targets = std::collections::BTreeMap::new();
        for snap in state.targets {
            let name = snap.name;
            let mut t = TargetState { streak: snap.streak, ..TargetState::default() };
            if same_buckets {
                for series in snap.series {
                    let Some(subject) = Subject::from_key(&series.subject) else {
                        notes.push(format!("target {name}: unknown series `{}` skipped", series.subject));
                        continue;
                    };
                    let mut window = series.window;
                    let dropped = window.sanitize(Sketch::is_compatible);
                    if dropped > 0 {
                        notes.push(format!(
                            "target {name}: {dropped} unreadable buckets of {subject} dropped"
                        ));
                    }
                    if !window.is_empty() {
                        t.timings.insert(subject, window);
                    }
                }
                t.probes = snap.probes;
                t.probes.sanitize(|_| true);
                if let Some(mut sessions) = snap.sessions {
                    let dropped = sessions.sanitize();
                    if dropped > 0 {
                        notes.push(format!("target {name}: {dropped} unreadable session buckets dropped"));
                    }
                    t.sessions = sessions;
                }
            }
            t.last_failure = snap.last_failure.as_ref().and_then(FailureSnapshot::info);
            t.last_timeout = snap.last_timeout.as_ref().and_then(FailureSnapshot::info);
            for s in snap.signals {
                match Signal::from_label(&s.signal) {
                    Some(signal) => {
                        t.signals.insert(signal, SignalState { active: s.active, detail: s.detail });
                    }
                    None => notes.push(format!("target {name}: unknown condition `{}` skipped", s.signal)),
                }
            }
            for a in snap.alerts {
                let kind = AlertKind::from_label(&a.alertname);
                let subject = a.subject.as_deref().map(Subject::from_key);
                let key = match (kind, subject) {
                    (Some(AlertKind::LatencyRegression), Some(Some(s))) => {
                        (AlertKind::LatencyRegression, Some(s))
                    }
                    (Some(k), None) if k != AlertKind::LatencyRegression => (k, None),
                    _ => {
                        let subject = a.subject.as_deref().unwrap_or("-");
                        notes.push(format!(
                            "target {name}: unknown alert {} ({subject}) skipped",
                            a.alertname
                        ));
                        continue;
                    }
                };
                t.alerts.insert(key, a.lifecycle);
            }
            targets.insert(name, t);
        }
        self.targets = targets;
        Ok(RestoreReport { targets: self.targets.len(), notes })
    }
}
