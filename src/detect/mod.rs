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
//!   steps that succeeded): the recent-window quantile (p95) is at least `ratio` (2×) the
//!   baseline's and at least `margin` (50 ms) above it, with `min_recent_samples` (10) and
//!   `min_baseline_samples` (30). With few recent samples a high quantile is the
//!   largest sample or two, so the recent quantile is taken lower when needed for at least
//!   `min_slow_samples` (3) samples to be at or above it: one or two slow probes are noise.
//!   Once pending, the condition holds while the ratio stays at or above `resolve_ratio`
//!   (1.5) and the excess at or above `resolve_margin` (25 ms).
//! - **TimeoutRegression**, per target: the recent share of probes failing with a
//!   timeout-class reason ([`Reason::is_timeout`]) exceeds the baseline share by `margin`
//!   (5 percentage points) with at least `min_timeouts` (3) timeouts. Once pending, the
//!   condition holds while the excess stays at or above `resolve_margin` (2.5 points).
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
//! LatencyRegression 5 m, TimeoutRegression 5 m, CircuitOpen 1 m, DeploymentDrift 10 m) →
//! resolved (false for `resolve_after`: 5 m for latency and timeouts, 0 s for the others,
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
//! than `baseline_window` (24 h) before the recent window are dropped. The baseline is thus
//! the 24 h before the recent window, never overlapping it, aging out an hour at a time.
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
//! `ceil(baseline_window / baseline_bucket) + 2` coarse buckets: 12 + 26 = 38 with the
//! defaults (validation caps each window at [`MAX_BUCKETS_PER_WINDOW`] buckets). A sketch
//! takes at most [`SKETCH_MAX_BYTES`] (8.25 KiB: latencies are clamped to
//! [`SKETCH_MAX_SECONDS`], which bounds its bins), and in practice 1 KiB. So one latency
//! series costs at most 38 × 8.25 KiB ≈ 314 KiB (about 40 KiB typical;
//! [`Detector::max_bytes_per_series`] computes the bound for a configuration), and a target
//! with P timed phases and S steps at most (P + S) times that: with 7 phases and 5 steps,
//! under 3.7 MiB (about 0.5 MiB typical). Count buckets are 16 bytes. Step series are
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
    CircuitOpenConfig, DeploymentDriftConfig, DetectorConfig, LatencyConfig, ProbeFailingConfig, Quantile,
    Severity, TimeoutConfig, MAX_BUCKETS_PER_WINDOW,
};
pub use state::{DetectorState, RestoreError, RestoreReport, STATE_VERSION};
pub use window::{SKETCH_ALPHA, SKETCH_MAX_BYTES, SKETCH_MAX_SECONDS};

use alert::{fmt_rate, fmt_secs, fmt_window, Evaluation, Finding, Lifecycle};
use window::{Aggregate, Counts, Layout, Sketch, Windowed};

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
    /// configuration, in bytes: buckets held at most × the largest sketch.
    pub fn max_bytes_per_series(&self) -> usize {
        self.layout.max_buckets() * SKETCH_MAX_BYTES
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

        let eval = self.probe_failing(name, config);
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
        for subject in subjects {
            let active = self.is_alerting(AlertKind::LatencyRegression, Some(&subject));
            let eval = latency(name, &subject, self.timings.get(&subject), active, config, layout);
            self.step(name, AlertKind::LatencyRegression, Some(subject), eval, config, now, &mut out);
        }

        let active = self.is_alerting(AlertKind::TimeoutRegression, None);
        let eval = self.timeouts(name, active, config, layout);
        self.step(name, AlertKind::TimeoutRegression, None, eval, config, now, &mut out);

        for signal in Signal::ALL {
            let state = self.signals.get(&signal);
            if state.is_none() && !self.is_alerting(signal.kind(), None) {
                continue;
            }
            let eval = signal_eval(name, signal, state);
            self.step(name, signal.kind(), None, eval, config, now, &mut out);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        name: &str,
        kind: AlertKind,
        subject: Option<Subject>,
        eval: Evaluation,
        config: &DetectorConfig,
        now: f64,
        out: &mut Vec<Transition>,
    ) {
        let map_key = (kind, subject);
        let mut slot = self.alerts.remove(&map_key);
        if slot.is_none() && !eval.condition {
            return;
        }
        let key = AlertKey { kind, target: name.to_owned(), subject: map_key.1.clone() };
        let transition = alert::step(&mut slot, &key, &config.timing(kind), eval, now);
        if let Some(lc) = slot {
            self.alerts.insert(map_key, lc);
        }
        out.extend(transition);
    }

    fn probe_failing(&self, name: &str, config: &DetectorConfig) -> Evaluation {
        let s = &self.streak;
        let needed = config.probe_failing.failures.get();
        let last = self.last_failure.as_ref().map_or_else(|| "unknown".to_owned(), FailureInfo::describe);
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
        Evaluation {
            condition: s.failing,
            finding: Finding {
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
            },
        }
    }

    /// `active`: the alert is pending or firing, so the resolve threshold applies.
    fn timeouts(&self, name: &str, active: bool, config: &DetectorConfig, layout: &Layout) -> Evaluation {
        let c = &config.timeouts;
        let (recent, base) = (self.probes.recent(), *self.probes.baseline());
        let window = fmt_window(layout.recent_window);
        let summary = format!("Probes of {name} time out more often than usual");
        if recent.probes < u64::from(c.min_recent_samples.get())
            || base.probes < u64::from(c.min_baseline_samples.get())
        {
            let description = format!(
                "not enough probes to compare: {} over the last {window} (needs {}), {} in the baseline (needs {})",
                recent.probes, c.min_recent_samples, base.probes, c.min_baseline_samples
            );
            return Evaluation {
                condition: false,
                finding: Finding { summary, description, measurement: None },
            };
        }
        let rate = |x: Counts| x.timeouts as f64 / x.probes as f64;
        let (r, b) = (rate(recent), rate(base));
        let (condition, threshold) = if active {
            (r - b >= c.resolve_margin.fraction(), b + c.resolve_margin.fraction())
        } else {
            let enough = recent.timeouts >= u64::from(c.min_timeouts.get());
            (enough && r - b >= c.margin.fraction(), b + c.margin.fraction())
        };
        let mut description = format!(
            "timeouts {} ({} of {}) over the last {window} vs baseline {} ({} of {})",
            fmt_rate(r),
            recent.timeouts,
            recent.probes,
            fmt_rate(b),
            base.timeouts,
            base.probes
        );
        if let Some(last) = &self.last_timeout {
            description.push_str(&format!(", last: {}", last.describe()));
        }
        Evaluation {
            condition,
            finding: Finding {
                summary,
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
            },
        }
    }
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

fn latency(
    name: &str,
    subject: &Subject,
    series: Option<&Windowed<Sketch>>,
    active: bool,
    config: &DetectorConfig,
    layout: &Layout,
) -> Evaluation {
    let c = &config.latency;
    let empty;
    let (recent, base) = match series {
        Some(w) => (w.recent(), w.baseline()),
        None => {
            empty = Sketch::empty();
            (Sketch::empty(), &empty)
        }
    };
    let (n_r, n_b) = (recent.count(), base.count());
    let window = fmt_window(layout.recent_window);
    let summary = format!("{subject} of {name} is slower than usual");
    let q = c.quantile;
    let quantiles =
        if n_r < u64::from(c.min_recent_samples.get()) || n_b < u64::from(c.min_baseline_samples.get()) {
            None
        } else {
            let q_recent = robust_quantile(q.get(), n_r, u64::from(c.min_slow_samples.get()));
            recent.quantile(q_recent).zip(base.quantile(q.get()))
        };
    let Some((r, b)) = quantiles else {
        let description = format!(
            "not enough samples to compare {q} {subject}: {n_r} over the last {window} (needs {}), {n_b} in the \
             baseline (needs {})",
            c.min_recent_samples, c.min_baseline_samples
        );
        return Evaluation { condition: false, finding: Finding { summary, description, measurement: None } };
    };
    let (ratio, margin) = if active { (c.resolve_ratio, c.resolve_margin) } else { (c.ratio, c.margin) };
    let threshold = (b * ratio).max(b + margin.get().as_secs_f64());
    let description = format!(
        "{q} {subject} {} vs baseline {} over the last {window}, {n_r} samples (baseline: {n_b} samples over the \
         {} before)",
        fmt_secs(r),
        fmt_secs(b),
        fmt_window(layout.baseline_window)
    );
    Evaluation {
        condition: r >= threshold,
        finding: Finding {
            summary,
            description,
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
        },
    }
}

fn signal_eval(name: &str, signal: Signal, state: Option<&SignalState>) -> Evaluation {
    let (summary, default) = match signal {
        Signal::CircuitOpen => {
            (format!("The circuit to {name} is open"), format!("the circuit breaker for {name} is open"))
        }
        Signal::DeploymentDrift => (
            format!("{name} does not run the expected deployment"),
            format!("the deployment check reports that {name} does not run the expected build"),
        ),
    };
    let active = state.is_some_and(|s| s.active);
    let description = match state.and_then(|s| s.detail.clone()) {
        Some(detail) => detail,
        None if active => default,
        None => "the condition cleared".to_owned(),
    };
    Evaluation { condition: active, finding: Finding { summary, description, measurement: None } }
}

#[cfg(test)]
mod tests;
