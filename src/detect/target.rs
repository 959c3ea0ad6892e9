//! What the detector keeps about one target, how each probe result updates it, and the
//! evaluation of the target's alerts.

use std::collections::BTreeMap;

use super::alert::{self, AlertKey, AlertKind, Evaluation, Lifecycle, Signal, Subject, Transition};
use super::config::DetectorConfig;
use super::rules::{Check, Context, RULES};
use super::sessions::{Learn, SessionState};
use super::window::{Counts, Layout, Sketch, Windowed};
use crate::probe::{Phase, ProbeResult, Reason};

/// Distinct step names tracked per target; further names are ignored. Configured
/// scenarios stay far below this; it only guards against a caller passing unconfigured
/// names.
pub(crate) const MAX_STEPS_PER_TARGET: usize = 64;

/// Everything the detector keeps about one target.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetState {
    /// Latency sketches per phase and step.
    pub(crate) timings: BTreeMap<Subject, Windowed<Sketch>>,
    /// Probe and timeout counts.
    pub(crate) probes: Windowed<Counts>,
    pub(crate) streak: Streak,
    pub(crate) last_failure: Option<FailureInfo>,
    pub(crate) last_timeout: Option<FailureInfo>,
    pub(crate) signals: BTreeMap<Signal, SignalState>,
    /// What held sessions reported (`session:` targets only).
    pub(crate) sessions: SessionState,
    /// Pending and firing alerts; inactive ones are not stored.
    pub(crate) alerts: BTreeMap<(AlertKind, Option<Subject>), Lifecycle>,
}

/// Consecutive outcomes, and the current failing episode for ProbeFailing's description.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Streak {
    pub(crate) consecutive_failures: u32,
    pub(crate) consecutive_successes: u32,
    /// ProbeFailing's condition.
    pub(crate) failing: bool,
    /// Probes and failures since the condition last became true.
    pub(crate) episode_probes: u64,
    pub(crate) episode_failures: u64,
}

/// How a probe failed, in label-safe terms (no server-provided text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureInfo {
    pub(crate) reason: Reason,
    pub(crate) phase: Option<Phase>,
    pub(crate) step: Option<String>,
    pub(crate) http_status: Option<u16>,
}

impl FailureInfo {
    pub(crate) fn of(r: &ProbeResult) -> Option<Self> {
        Some(Self { reason: r.reason?, phase: r.phase, step: r.step.clone(), http_status: r.http_status })
    }

    /// `handshake_status (HTTP 404) in handshake`, `expect_timeout in step agent_completed`.
    pub(crate) fn describe(&self) -> String {
        let mut s = self.reason.as_str().to_owned();
        if let (Reason::HandshakeStatus, Some(status)) = (self.reason, self.http_status) {
            s.push_str(&format!(" (HTTP {status})"));
        }
        match (self.phase, &self.step) {
            (Some(Phase::Step), Some(step)) => s.push_str(&format!(" in step {step}")),
            (Some(phase), _) => s.push_str(&format!(" in {phase}")),
            (None, _) => {}
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignalState {
    pub(crate) active: bool,
    pub(crate) detail: Option<String>,
}

impl TargetState {
    pub(crate) fn is_alerting(&self, kind: AlertKind, subject: Option<&Subject>) -> bool {
        // Keys are few; a scan avoids cloning a subject for the lookup.
        self.alerts.keys().any(|(k, s)| *k == kind && s.as_ref() == subject)
    }

    /// The target itself as a rule's one subject when the rule `applies` to it, and also
    /// while its `kind` alert is still held, so that the alert can resolve.
    pub(crate) fn whole_target_if(&self, applies: bool, kind: AlertKind) -> Vec<Option<Subject>> {
        if applies || self.is_alerting(kind, None) {
            vec![None]
        } else {
            Vec::new()
        }
    }

    /// Moves data through the windows; series under an active alert do not learn.
    pub(crate) fn roll(&mut self, layout: &Layout, now: f64) {
        let alerts = &self.alerts;
        let alerting = |kind: AlertKind, subject: Option<&Subject>| {
            alerts.keys().any(|(k, s)| *k == kind && s.as_ref() == subject)
        };
        for (subject, w) in &mut self.timings {
            w.roll(layout, now, !alerting(AlertKind::LatencyRegression, Some(subject)));
        }
        self.timings.retain(|_, w| !w.is_empty());
        self.probes.roll(layout, now, !alerting(AlertKind::TimeoutRegression, None));
        let learn = Learn {
            disconnects: !alerting(AlertKind::SessionsDropping, None),
            ping_rtt: !alerting(AlertKind::SessionPingRTTRegression, None),
            heartbeat_rtt: !alerting(AlertKind::SessionHeartbeatRTTRegression, None),
        };
        self.sessions.roll(layout, now, learn);
    }

    pub(crate) fn record(&mut self, r: &ProbeResult, layout: &Layout, config: &DetectorConfig, now: f64) {
        let usable = |s: f64| s.is_finite() && s >= 0.0;
        for (phase, secs) in r.phases.iter() {
            // The phase a probe failed in was cut short: a failure, not a latency.
            if usable(secs) && (r.success || r.phase != Some(phase)) {
                self.timings.entry(Subject::Phase(phase)).or_default().record(layout, now, |s| s.add(secs));
            }
        }
        for step in r.steps.iter().filter(|s| s.ok && usable(s.duration_seconds)) {
            let subject = Subject::Step(step.name.clone());
            if !self.timings.contains_key(&subject) {
                let steps = self.timings.keys().filter(|s| matches!(s, Subject::Step(_))).count();
                if steps >= MAX_STEPS_PER_TARGET {
                    continue;
                }
            }
            self.timings.entry(subject).or_default().record(layout, now, |s| s.add(step.duration_seconds));
        }

        let timed_out = !r.success && r.reason.is_some_and(Reason::is_timeout);
        self.probes.record(layout, now, |c| {
            c.probes += 1;
            c.timeouts += u64::from(timed_out);
        });
        if !r.success {
            self.last_failure = FailureInfo::of(r);
            if timed_out {
                self.last_timeout = FailureInfo::of(r);
            }
        }

        let s = &mut self.streak;
        let pf = &config.probe_failing;
        if r.success {
            s.consecutive_successes = s.consecutive_successes.saturating_add(1);
            s.consecutive_failures = 0;
            if s.failing {
                s.episode_probes += 1;
                s.failing = s.consecutive_successes < pf.successes.get();
            }
        } else {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.consecutive_successes = 0;
            if s.failing {
                s.episode_probes += 1;
                s.episode_failures += 1;
            } else if s.consecutive_failures >= pf.failures.get() {
                s.failing = true;
                s.episode_probes = u64::from(s.consecutive_failures);
                s.episode_failures = u64::from(s.consecutive_failures);
            }
        }
    }

    /// Evaluates every alert of this target at `now`, rule by rule.
    pub(crate) fn evaluate(
        &mut self,
        name: &str,
        config: &DetectorConfig,
        layout: &Layout,
        now: f64,
    ) -> Vec<Transition> {
        let cx = Context { name, config, layout, now };
        let mut out = Vec::new();
        for rule in RULES {
            let kind = rule.kind();
            for subject in rule.subjects(self) {
                let active = self.is_alerting(kind, subject.as_ref());
                let check = rule.check(self, cx, subject.as_ref(), active);
                let eval = explain(check, active, config.timing(kind).enabled);
                self.step(cx, kind, subject, eval, &mut out);
            }
        }
        out
    }

    /// Moves one alert through its lifecycle; `None` (see [`explain`]) leaves it inactive.
    fn step(
        &mut self,
        cx: Context<'_>,
        kind: AlertKind,
        subject: Option<Subject>,
        eval: Option<Evaluation>,
        out: &mut Vec<Transition>,
    ) {
        let Some(eval) = eval else { return };
        let timing = cx.config.timing(kind);
        let map_key = (kind, subject);
        let mut slot = self.alerts.remove(&map_key);
        let key = AlertKey { kind, target: cx.name.to_owned(), subject: map_key.1.clone() };
        let transition = alert::step(&mut slot, &key, &timing, eval, cx.now);
        if let Some(lc) = slot {
            self.alerts.insert(map_key, lc);
        }
        out.extend(transition);
    }
}

/// The check's evaluation when its alert exists (`active`) or is about to; `None`
/// otherwise, and then the explanation is never built.
fn explain(check: Check<'_>, active: bool, enabled: bool) -> Option<Evaluation> {
    let needed = (check.condition && enabled) || active;
    needed.then(|| Evaluation { condition: check.condition, finding: (check.explain)() })
}
