//! The regression detector: decides, from probe results and a clock, when connectivity or
//! timeouts regress, and explains each alert with numbers.
//!
//! It is a pure state machine, without I/O: the caller feeds it [`Detector::observe`] for
//! every probe result, [`Detector::tick`] periodically (every 15 s is plenty) for
//! time-based transitions, and [`Detector::set_condition`] for conditions it cannot see
//! itself (the circuit breaker, the deployment check). Each call returns the alert
//! [`Transition`]s it caused; [`Detector::alerts`] lists the pending and firing alerts.
//! Delivering them (Alertmanager, logs) and persisting state are the caller's business.
//!
//! # Time is an input
//!
//! Every call takes `now` as Unix seconds (`f64`). The same code therefore runs live (the
//! caller passes the wall clock, or a paused tokio clock mapped to seconds) and on recorded
//! traces (each record's `"ts"`), and it is deterministic: its tests feed explicit
//! timestamps and need no `#[tokio::test(start_paused = true)]`. Samples are filed under
//! `now`, not under `ProbeResult::started_at`. Time should not run backwards; if it does,
//! samples still land in the right bucket and nothing breaks.
//!
//! # Alerts
//!
//! Each alert is identified by (alertname, target, phase or step) and carries a severity
//! (`page` for ProbeFailing and CircuitOpen, `ticket` otherwise; configurable).
//!
//! - **ProbeFailing**: `failures` (3) consecutive failed probes make the condition true;
//!   `successes` (2) consecutive successful ones make it false again. The fast path for
//!   hard outages: it fires at once (`for: 0s`).
//! - **LatencyRegression**, per phase (from [`PhaseTimings`](crate::probe::PhaseTimings);
//!   the failed phase of a failed probe is not a latency) and per step (durations of
//!   steps that succeeded): the recent-window quantile (p95) is at least `ratio` (1.5×) the
//!   baseline's and at least `margin` (20 ms) above it, with `min_recent_samples` (10) and
//!   `min_baseline_samples` (30). The baseline is, by default (`baseline: time_of_day`),
//!   the same time yesterday ± `time_of_day_span` (1 h), so that a daily rhythm neither
//!   hides a regression in the quiet hours nor raises one in the busy hours; while those
//!   hours hold too few samples (a target's first day) it is the whole baseline window.
//!   With few recent samples a high quantile is the largest sample or two, so the recent
//!   quantile is read lower when needed for at least `min_slow_samples` (4; one more for
//!   every 20 samples beyond 39, as at shorter intervals) samples to be
//!   at or above it, and still compared with the baseline's true quantile: the condition
//!   then means "4 samples at 1.5× the usual p95", which chance outliers almost never
//!   make. Once pending, the condition holds while the ratio stays at or above
//!   `resolve_ratio` (1.25) and the excess at or above `resolve_margin` (10 ms).
//! - **TimeoutRegression**, per target: the recent share of probes failing with a
//!   timeout-class reason ([`Reason::is_timeout`]) exceeds the baseline share by `margin`
//!   (5 percentage points), with at least `min_timeouts` (2) timeouts, and that many
//!   timeouts among that many probes would be a chance below `significance` (10⁻⁴) at the
//!   baseline rate (a binomial tail; the rate is taken about one standard deviation above
//!   its estimate, so that a young or lucky baseline without timeouts does not make two of
//!   them look impossible). The noisier the baseline, the more timeouts it takes: 2 of 20
//!   after a clean day, 3 at a 0.2 % baseline, 4 at 1 %. Once pending, the condition holds
//!   while the excess stays at or above `resolve_margin` (2.5 points).
//! - **CircuitOpen** and **DeploymentDrift**: external conditions, set per target.
//!
//! Not enough samples counts as "condition false": an alert is never raised without the
//! data to back it, and a latency alert whose phase stops producing timings (because the
//! probe now fails before it) resolves, leaving the outage to ProbeFailing and
//! TimeoutRegression.
//!
//! # Lifecycle
//!
//! inactive → pending (condition true) → firing (true for `for`: ProbeFailing 0 s,
//! LatencyRegression 3 m, TimeoutRegression 1 m, CircuitOpen 1 m, DeploymentDrift 10 m) →
//! resolved (false for `resolve_after`: 5 m for latency, 10 m for timeouts, 0 s for the others,
//! ProbeFailing having its own hysteresis in `successes`) → inactive. A pending alert whose
//! condition clears before `for` returns to inactive; that transition is reported but
//! [`Transition::notifies`] is false for it. Conditions are evaluated at every `observe`
//! (for that target), `set_condition` and `tick`, so `for` is honoured to within the
//! interval between calls.
//!
//! Hysteresis on the value: the full thresholds (ratio, margin, minimum slow samples or
//! timeouts) only decide when a condition becomes true; from then on, pending or firing,
//! it stays true until the value falls below the lower resolve thresholds. So a value
//! hovering around the threshold neither flaps between firing and resolved nor keeps
//! restarting the `for` clock, and a real regression measured on few samples (10 % of 20
//! probes is 2 or 3 timeouts) is confirmed rather than lost each time a sample leaves the
//! window.
//!
//! # Windows and baseline
//!
//! Per target, per series (each phase, each step, and the probe/timeout counts), samples
//! go into fine buckets of `recent_bucket` (1 m). The recent window (10 m) is the fine
//! buckets not yet older than `recent_window`, so it slides in `recent_bucket` steps and
//! spans up to one bucket more than configured. A fine bucket that leaves the recent
//! window is merged into a coarse bucket of `baseline_bucket` (1 h); coarse buckets older
//! than `baseline_window` (26 h) before the recent window are dropped. The baseline is thus
//! the 26 h before the recent window, never overlapping it, aging out an hour at a time;
//! the time-of-day latency baseline is the coarse buckets whose middle lies 23 to 25 h ago.
//! Latency buckets are DDSketch quantile sketches (`sketches-ddsketch`, 2 % relative
//! accuracy), merged on demand; count buckets are two integers.
//!
//! While an alert on a series is pending or firing, what leaves its recent window is
//! dropped instead of learned, so a lasting regression does not become its own baseline
//! within the hour. It does after one `baseline_window`: by then the old baseline has aged
//! out, the condition lacks a baseline, the alert resolves and the new level is learned.
//!
//! # Memory
//!
//! A series holds at most `ceil(recent_window / recent_bucket) + 2` fine and
//! `ceil(baseline_window / baseline_bucket) + 2` coarse buckets: 12 + 28 = 40 with the
//! defaults (validation caps each window at [`MAX_BUCKETS_PER_WINDOW`] buckets), plus two
//! merged baselines kept for reuse. A sketch takes at most [`SKETCH_MAX_BYTES`] (8.25 KiB:
//! latencies are clamped to [`SKETCH_MAX_SECONDS`], which bounds its bins), and in practice
//! 1 KiB. So one latency series costs at most 42 × 8.25 KiB ≈ 347 KiB (about 45 KiB
//! typical; [`Detector::max_bytes_per_series`] computes the bound for a configuration), and
//! a target with P timed phases and S steps at most (P + S) times that: with 7 phases and 5
//! steps, under 4.1 MiB (about 0.5 MiB typical). Count buckets are 16 bytes. Step series are
//! bounded by the configured steps (the caller passes only results of configured targets,
//! whose step names are configured names), and in any case by [`MAX_STEPS_PER_TARGET`].
//! Targets are keyed by `ProbeResult::target`; call [`Detector::retain_targets`] when the
//! configuration drops some.
//!
//! # Persistence
//!
//! [`Detector::snapshot`] returns a serializable [`DetectorState`] (with a `version`) for
//! the caller to write atomically; [`Detector::restore`] loads one into a detector. It
//! keeps targets it has not seen (call `retain_targets` afterwards to drop removed ones),
//! skips phases, reasons and alert kinds it does not know, and drops window data bucketed
//! with other widths than the current configuration's. Reconfiguring is the same: build a
//! new detector, restore the old one's snapshot.

mod alert;
mod config;
mod state;
mod window;

use std::collections::BTreeMap;

pub use alert::{Alert, AlertKey, AlertKind, AlertState, Measurement, Signal, Subject, Transition};
pub use config::{
    CircuitOpenConfig, DeploymentDriftConfig, DetectorConfig, LatencyBaseline, LatencyConfig,
    ProbeFailingConfig, Quantile, Severity, TimeoutConfig, MAX_BUCKETS_PER_WINDOW,
};
pub use state::{DetectorState, RestoreError, RestoreReport, STATE_VERSION};
pub use window::{SKETCH_ALPHA, SKETCH_MAX_BYTES, SKETCH_MAX_SECONDS};

use alert::{fmt_rate, fmt_secs, fmt_window, Evaluation, Finding, Lifecycle};
use config::DAY_SECONDS;
use window::{Counts, Layout, Sketch, Windowed};

use crate::probe::{Phase, ProbeResult, Reason};

/// Distinct step names tracked per target; further names are ignored. Configured
/// scenarios stay far below this; it only guards against a caller passing unconfigured
/// names.
pub const MAX_STEPS_PER_TARGET: usize = 64;

/// The regression detector. See the module documentation.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    layout: Layout,
    targets: BTreeMap<String, TargetState>,
}

/// Everything the detector keeps about one target.
#[derive(Debug, Clone, Default)]
struct TargetState {
    /// Latency sketches per phase and step.
    timings: BTreeMap<Subject, Windowed<Sketch>>,
    /// Probe and timeout counts.
    probes: Windowed<Counts>,
    streak: Streak,
    last_failure: Option<FailureInfo>,
    last_timeout: Option<FailureInfo>,
    signals: BTreeMap<Signal, SignalState>,
    /// Pending and firing alerts; inactive ones are not stored.
    alerts: BTreeMap<(AlertKind, Option<Subject>), Lifecycle>,
}

/// Consecutive outcomes, and the current failing episode for ProbeFailing's description.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Streak {
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// ProbeFailing's condition.
    failing: bool,
    /// Probes and failures since the condition last became true.
    episode_probes: u64,
    episode_failures: u64,
}

/// How a probe failed, in label-safe terms (no server-provided text).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FailureInfo {
    reason: Reason,
    phase: Option<Phase>,
    step: Option<String>,
    http_status: Option<u16>,
}

impl FailureInfo {
    fn of(r: &ProbeResult) -> Option<Self> {
        Some(Self { reason: r.reason?, phase: r.phase, step: r.step.clone(), http_status: r.http_status })
    }

    /// `handshake_status (HTTP 404) in handshake`, `expect_timeout in step agent_completed`.
    fn describe(&self) -> String {
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
struct SignalState {
    active: bool,
    detail: Option<String>,
}

impl Detector {
    /// A detector with no history. `config` should have passed [`DetectorConfig::validate`].
    pub fn new(config: DetectorConfig) -> Self {
        let layout = config.layout();
        Self { config, layout, targets: BTreeMap::new() }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Takes one probe result into account at `now` (Unix seconds) and re-evaluates its
    /// target's alerts.
    pub fn observe(&mut self, result: &ProbeResult, now: f64) -> Vec<Transition> {
        if !now.is_finite() {
            return Vec::new();
        }
        let (config, layout) = (&self.config, &self.layout);
        let target = match self.targets.get_mut(&result.target) {
            Some(t) => t,
            None => self.targets.entry(result.target.clone()).or_default(),
        };
        target.roll(layout, now);
        target.record(result, layout, config, now);
        target.evaluate(&result.target, config, layout, now)
    }

    /// Re-evaluates every target at `now`: alerts whose `for` or `resolve_after` has run
    /// out change state, and data leaves the windows.
    pub fn tick(&mut self, now: f64) -> Vec<Transition> {
        if !now.is_finite() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (name, target) in &mut self.targets {
            target.roll(&self.layout, now);
            out.extend(target.evaluate(name, &self.config, &self.layout, now));
        }
        out
    }

    /// Sets an external condition of `target` (true: the circuit is open, the deployment
    /// drifted), with an optional sentence for the alert's description, and re-evaluates
    /// the target.
    pub fn set_condition(
        &mut self,
        target: &str,
        signal: Signal,
        active: bool,
        detail: Option<String>,
        now: f64,
    ) -> Vec<Transition> {
        if !now.is_finite() {
            return Vec::new();
        }
        let state = match self.targets.get_mut(target) {
            Some(t) => t,
            None => self.targets.entry(target.to_owned()).or_default(),
        };
        state.signals.insert(signal, SignalState { active, detail });
        state.roll(&self.layout, now);
        state.evaluate(target, &self.config, &self.layout, now)
    }

    /// Pending and firing alerts, ordered by target, alert name and subject.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for (name, target) in &self.targets {
            for ((kind, subject), lc) in &target.alerts {
                let key = AlertKey { kind: *kind, target: name.clone(), subject: subject.clone() };
                out.push(lc.alert(key, self.config.timing(*kind).severity));
            }
        }
        out
    }

    /// Drops every target `keep` rejects (e.g. after a reload removed it). Its firing
    /// alerts resolve and its pending ones go inactive; the transitions are returned.
    pub fn retain_targets(&mut self, mut keep: impl FnMut(&str) -> bool, now: f64) -> Vec<Transition> {
        let mut out = Vec::new();
        let names: Vec<String> = self.targets.keys().filter(|n| !keep(n)).cloned().collect();
        for name in names {
            let Some(target) = self.targets.remove(&name) else { continue };
            for ((kind, subject), lc) in target.alerts {
                let key = AlertKey { kind, target: name.clone(), subject };
                let mut alert = lc.alert(key, self.config.timing(kind).severity);
                let from = alert.state;
                alert.state = if lc.is_firing() { AlertState::Resolved } else { AlertState::Inactive };
                if lc.is_firing() {
                    alert.resolved_at = Some(now);
                }
                alert.description = format!("{} is no longer monitored", alert.key.target);
                out.push(Transition { from, to: alert.state, at: now, alert });
            }
        }
        out
    }

    /// The most memory one latency series (a phase or step of a target) can take with this
    /// configuration, in bytes: buckets held at most, plus the two merged baselines kept
    /// for reuse, × the largest sketch.
    pub fn max_bytes_per_series(&self) -> usize {
        (self.layout.max_buckets() + 2) * SKETCH_MAX_BYTES
    }

    /// Names of the targets the detector holds state for.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }
}

impl TargetState {
    fn is_alerting(&self, kind: AlertKind, subject: Option<&Subject>) -> bool {
        // Keys are few; a scan avoids cloning a subject for the lookup.
        self.alerts.keys().any(|(k, s)| *k == kind && s.as_ref() == subject)
    }

    /// Moves data through the windows; series under an active alert do not learn.
    fn roll(&mut self, layout: &Layout, now: f64) {
        let alerts = &self.alerts;
        let alerting = |kind: AlertKind, subject: Option<&Subject>| {
            alerts.keys().any(|(k, s)| *k == kind && s.as_ref() == subject)
        };
        for (subject, w) in &mut self.timings {
            w.roll(layout, now, !alerting(AlertKind::LatencyRegression, Some(subject)));
        }
        self.timings.retain(|_, w| !w.is_empty());
        self.probes.roll(layout, now, !alerting(AlertKind::TimeoutRegression, None));
    }

    fn record(&mut self, r: &ProbeResult, layout: &Layout, config: &DetectorConfig, now: f64) {
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

    /// Evaluates every alert of this target at `now`.
    fn evaluate(
        &mut self,
        name: &str,
        config: &DetectorConfig,
        layout: &Layout,
        now: f64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();

        let eval = self.explain(AlertKind::ProbeFailing, None, self.probe_failing(name, config), config);
        self.step(name, AlertKind::ProbeFailing, None, eval, config, now, &mut out);

        // Series with data, and series whose alert outlived their data.
        let mut subjects: Vec<Subject> = self.timings.keys().cloned().collect();
        for (kind, subject) in self.alerts.keys() {
            if let (AlertKind::LatencyRegression, Some(s)) = (kind, subject) {
                if !self.timings.contains_key(s) {
                    subjects.push(s.clone());
                }
            }
        }
        subjects.sort();
        for subject in &subjects {
            let active = self.is_alerting(AlertKind::LatencyRegression, Some(subject));
            let check = latency(name, subject, self.timings.get_mut(subject), active, config, layout, now);
            let eval = self.explain(AlertKind::LatencyRegression, Some(subject), check, config);
            self.step(name, AlertKind::LatencyRegression, Some(subject.clone()), eval, config, now, &mut out);
        }

        let active = self.is_alerting(AlertKind::TimeoutRegression, None);
        let check = self.timeouts(name, active, config, layout);
        let eval = self.explain(AlertKind::TimeoutRegression, None, check, config);
        self.step(name, AlertKind::TimeoutRegression, None, eval, config, now, &mut out);

        for signal in Signal::ALL {
            let state = self.signals.get(&signal);
            if state.is_none() && !self.is_alerting(signal.kind(), None) {
                continue;
            }
            let eval = self.explain(signal.kind(), None, signal_check(name, signal, state), config);
            self.step(name, signal.kind(), None, eval, config, now, &mut out);
        }
        out
    }

    /// The check's evaluation when its alert exists or is about to; `None` otherwise, and
    /// then the explanation is never built. Reads the target's state without copying it.
    fn explain(
        &self,
        kind: AlertKind,
        subject: Option<&Subject>,
        check: Check<'_>,
        config: &DetectorConfig,
    ) -> Option<Evaluation> {
        let needed = (check.condition && config.timing(kind).enabled) || self.is_alerting(kind, subject);
        needed.then(|| Evaluation { condition: check.condition, finding: (check.explain)() })
    }

    /// Moves one alert through its lifecycle; `None` (see [`TargetState::explain`]) leaves
    /// it inactive.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        name: &str,
        kind: AlertKind,
        subject: Option<Subject>,
        eval: Option<Evaluation>,
        config: &DetectorConfig,
        now: f64,
        out: &mut Vec<Transition>,
    ) {
        let Some(eval) = eval else { return };
        let timing = config.timing(kind);
        let map_key = (kind, subject);
        let mut slot = self.alerts.remove(&map_key);
        let key = AlertKey { kind, target: name.to_owned(), subject: map_key.1.clone() };
        let transition = alert::step(&mut slot, &key, &timing, eval, now);
        if let Some(lc) = slot {
            self.alerts.insert(map_key, lc);
        }
        out.extend(transition);
    }

    fn probe_failing<'a>(&'a self, name: &'a str, config: &'a DetectorConfig) -> Check<'a> {
        let s = self.streak;
        let last = self.last_failure.as_ref();
        Check::new(s.failing, move || {
            let needed = config.probe_failing.failures.get();
            let last = last.map_or_else(|| "unknown".to_owned(), FailureInfo::describe);
            let description = if s.failing && u64::from(s.consecutive_failures) == s.episode_probes {
                format!("{} consecutive failures, last: {last}", s.consecutive_failures)
            } else if s.failing {
                format!(
                    "{} of the last {} probes failed ({} consecutive successes so far), last failure: {last}",
                    s.episode_failures, s.episode_probes, s.consecutive_successes
                )
            } else if s.consecutive_failures > 0 {
                format!("{} consecutive failures (alerts at {needed}), last: {last}", s.consecutive_failures)
            } else if s.episode_probes > 0 {
                format!(
                    "recovered: {} consecutive successes after {} of {} probes failed, last failure: {last}",
                    s.consecutive_successes, s.episode_failures, s.episode_probes
                )
            } else {
                "probes succeed".to_owned()
            };
            Finding {
                summary: format!("Probes of {name} are failing"),
                description,
                measurement: Some(Measurement {
                    value: f64::from(s.consecutive_failures),
                    baseline: None,
                    threshold: Some(f64::from(needed)),
                    samples: s.episode_probes,
                    baseline_samples: 0,
                    events: Some(s.episode_failures),
                    baseline_events: None,
                    window_seconds: None,
                }),
            }
        })
    }

    /// `active`: the alert is pending or firing, so the resolve threshold applies.
    fn timeouts<'a>(
        &'a self,
        name: &'a str,
        active: bool,
        config: &'a DetectorConfig,
        layout: &'a Layout,
    ) -> Check<'a> {
        let c = &config.timeouts;
        let (recent, base) = (self.probes.recent(), *self.probes.baseline());
        let summary = move || format!("Probes of {name} time out more often than usual");
        if recent.probes < u64::from(c.min_recent_samples.get())
            || base.probes < u64::from(c.min_baseline_samples.get())
        {
            return Check::new(false, move || {
                Finding {
                summary: summary(),
                description: format!(
                    "not enough probes to compare: {} over the last {} (needs {}), {} in the baseline (needs {})",
                    recent.probes,
                    fmt_window(layout.recent_window),
                    c.min_recent_samples,
                    base.probes,
                    c.min_baseline_samples
                ),
                measurement: None,
            }
            });
        }
        let rate = |x: Counts| x.timeouts as f64 / x.probes as f64;
        let (r, b) = (rate(recent), rate(base));
        let chance =
            (recent.timeouts > 0).then(|| binomial_tail(recent.probes, recent.timeouts, rate_bound(base)));
        let (condition, threshold) = if active {
            (r - b >= c.resolve_margin.fraction(), b + c.resolve_margin.fraction())
        } else {
            let enough = recent.timeouts >= u64::from(c.min_timeouts.get()) && r - b >= c.margin.fraction();
            (enough && chance.is_some_and(|p| p <= c.significance), b + c.margin.fraction())
        };
        let last = self.last_timeout.as_ref();
        Check::new(condition, move || {
            let mut description = format!(
                "timeouts {} ({} of {}) over the last {} vs baseline {} ({} of {})",
                fmt_rate(r),
                recent.timeouts,
                recent.probes,
                fmt_window(layout.recent_window),
                fmt_rate(b),
                base.timeouts,
                base.probes
            );
            if let Some(p) = chance {
                description.push_str(&format!(", {} by chance at the baseline rate", fmt_chance(p)));
            }
            if let Some(last) = last {
                description.push_str(&format!(", last: {}", last.describe()));
            }
            Finding {
                summary: summary(),
                description,
                measurement: Some(Measurement {
                    value: r,
                    baseline: Some(b),
                    threshold: Some(threshold),
                    samples: recent.probes,
                    baseline_samples: base.probes,
                    events: Some(recent.timeouts),
                    baseline_events: Some(base.timeouts),
                    window_seconds: Some(layout.recent_window),
                }),
            }
        })
    }
}

/// A condition, and how to explain it. Most evaluations find nothing and keep nothing, so
/// the explanation is built only when an alert needs it.
struct Check<'a> {
    condition: bool,
    explain: Box<dyn FnOnce() -> Finding + 'a>,
}

impl<'a> Check<'a> {
    fn new(condition: bool, explain: impl FnOnce() -> Finding + 'a) -> Self {
        Self { condition, explain: Box::new(explain) }
    }
}

/// The baseline's timeout rate taken at the upper end of what its count allows (about one
/// standard deviation above, and never below 2 timeouts' worth), so that a young or lucky
/// baseline without timeouts does not make two of them look impossible.
fn rate_bound(base: Counts) -> f64 {
    let x = base.timeouts as f64;
    ((x + 1.0 + (x + 1.0).sqrt()) / base.probes.max(1) as f64).min(1.0)
}

/// Slow samples a window of `n` must hold: `min_slow` for up to 39 samples (a 10-minute
/// window probed every 30 s holds about 20), one more for every further 20. More probes
/// give chance outliers more tries; with this the chance that they reach the count stays
/// about what it is at 30 s (at a 0.5 % outlier rate, 4 of 20 happen in 1 in 350,000
/// windows and 5 of 40 in 1 in 560,000, but 4 of 40 in 1 in 20,000).
fn slow_samples_needed(min_slow: u64, n: u64) -> u64 {
    min_slow + n.saturating_sub(20) / 20
}

/// The quantile to read from `n` samples so that at least `min_slow` of them are at or
/// above it: `q` itself unless that would rest on fewer samples.
///
/// DDSketch returns the value of rank `floor(q × (n − 1))` (0-based), which has
/// `n − rank` samples at or above it.
fn robust_quantile(q: f64, n: u64, min_slow: u64) -> f64 {
    if n <= 1 || min_slow <= 1 {
        return q;
    }
    let rank = (q * (n - 1) as f64).floor() as u64;
    if n - rank.min(n) >= min_slow {
        return q;
    }
    let wanted = n.saturating_sub(min_slow);
    // The middle of the rank's interval, so that flooring lands on it exactly.
    ((wanted as f64 + 0.5) / (n - 1) as f64).min(q)
}

/// The chance of at least `k` timeouts among `n` probes if each timed out with probability
/// `p`: the binomial upper tail, summed from its `k`-th term so that tiny values keep their
/// precision.
fn binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    let ln_choose: f64 = (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum();
    let mut term = (ln_choose + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p()).exp();
    let odds = p / (1.0 - p);
    let mut sum = 0.0;
    for i in k..=n {
        sum += term;
        // Past the mode the terms only shrink; stop once they no longer count.
        if term <= sum * 1e-17 {
            break;
        }
        term *= (n - i) as f64 / (i + 1) as f64 * odds;
    }
    sum.min(1.0)
}

/// A small probability as people read it: `1 in 59,000`, `3%`.
fn fmt_chance(p: f64) -> String {
    if p >= 0.01 {
        return format!("{}%", (p * 100.0).round());
    }
    let one_in = 1.0 / p.max(1e-15);
    // Two significant digits.
    let scale = 10f64.powi(one_in.log10().floor() as i32 - 1).max(1.0);
    let n = ((one_in / scale).round() * scale) as u64;
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("1 in {grouped}")
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`.
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// What a latency series was compared with.
#[derive(Clone, Copy)]
enum Reference {
    /// The same time yesterday (`baseline: time_of_day`).
    Yesterday,
    /// The whole window, because yesterday has too few samples (a target's first day).
    WindowForNow,
    /// The whole window (`baseline: window`).
    Window,
}

/// LatencyRegression for one series: the recent quantile against the baseline's.
fn latency<'a>(
    name: &'a str,
    subject: &'a Subject,
    series: Option<&mut Windowed<Sketch>>,
    active: bool,
    config: &'a DetectorConfig,
    layout: &'a Layout,
    now: f64,
) -> Check<'a> {
    let c = &config.latency;
    let summary = move || format!("{subject} of {name} is slower than usual");
    let (min_recent, min_baseline) =
        (u64::from(c.min_recent_samples.get()), u64::from(c.min_baseline_samples.get()));
    let not_enough = move |n_r: u64, n_b: u64| {
        Check::new(false, move || {
            let description = format!(
                "not enough samples to compare {} {subject}: {n_r} over the last {} (needs {min_recent}), {n_b} in \
                 the baseline (needs {min_baseline})",
                c.quantile,
                fmt_window(layout.recent_window)
            );
            Finding { summary: summary(), description, measurement: None }
        })
    };
    let Some(w) = series else { return not_enough(0, 0) };
    let recent = w.recent();
    let n_r = recent.count();

    // The same time yesterday when it holds enough samples, else the whole window.
    let (base, reference) = match c.baseline {
        LatencyBaseline::TimeOfDay => {
            let (center, span) = (now - DAY_SECONDS, c.time_of_day_span.get().as_secs_f64());
            if w.baseline_between(layout, center - span, center + span).count() >= min_baseline {
                (w.baseline_between(layout, center - span, center + span), Reference::Yesterday)
            } else {
                (w.baseline(), Reference::WindowForNow)
            }
        }
        LatencyBaseline::Window => (w.baseline(), Reference::Window),
    };
    let n_b = base.count();
    if n_r < min_recent || n_b < min_baseline {
        return not_enough(n_r, n_b);
    }
    // With few recent samples the quantile is read lower, at the `min_slow`-th slowest; it
    // is still compared with the baseline's true quantile, which only errs towards silence.
    let min_slow = slow_samples_needed(u64::from(c.min_slow_samples.get()), n_r);
    let q = robust_quantile(c.quantile.get(), n_r, min_slow);
    let Some((r, b)) = recent.quantile(q).zip(base.quantile(c.quantile.get())) else {
        return not_enough(n_r, n_b);
    };
    let (ratio, margin) = if active { (c.resolve_ratio, c.resolve_margin) } else { (c.ratio, c.margin) };
    let threshold = (b * ratio).max(b + margin.get().as_secs_f64());
    Check::new(r >= threshold, move || {
        let lowered = if q < c.quantile.get() {
            format!(" (the {} slowest: too few for a plain {})", ordinal(min_slow), c.quantile)
        } else {
            String::new()
        };
        let reference = match reference {
            Reference::Yesterday => "around this time yesterday".to_owned(),
            Reference::WindowForNow => format!(
                "over the {} before, as this time yesterday has too few",
                fmt_window(layout.baseline_window)
            ),
            Reference::Window => format!("over the {} before", fmt_window(layout.baseline_window)),
        };
        Finding {
            summary: summary(),
            description: format!(
                "{} {subject} {} vs baseline {} over the last {}, {n_r} samples{lowered}; baseline: {n_b} samples \
                 {reference}",
                c.quantile,
                fmt_secs(r),
                fmt_secs(b),
                fmt_window(layout.recent_window),
            ),
            measurement: Some(Measurement {
                value: r,
                baseline: Some(b),
                threshold: Some(threshold),
                samples: n_r,
                baseline_samples: n_b,
                events: None,
                baseline_events: None,
                window_seconds: Some(layout.recent_window),
            }),
        }
    })
}

fn signal_check<'a>(name: &'a str, signal: Signal, state: Option<&'a SignalState>) -> Check<'a> {
    let active = state.is_some_and(|s| s.active);
    Check::new(active, move || {
        let (summary, default) = match signal {
            Signal::CircuitOpen => {
                (format!("The circuit to {name} is open"), format!("the circuit breaker for {name} is open"))
            }
            Signal::DeploymentDrift => (
                format!("{name} does not run the expected deployment"),
                format!("the deployment check reports that {name} does not run the expected build"),
            ),
        };
        let description = match state.and_then(|s| s.detail.clone()) {
            Some(detail) => detail,
            None if active => default,
            None => "the condition cleared".to_owned(),
        };
        Finding { summary, description, measurement: None }
    })
}

#[cfg(test)]
mod tests;
