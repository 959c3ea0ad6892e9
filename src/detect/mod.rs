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
//!   timeout-class reason ([`Reason::is_timeout`](crate::probe::Reason::is_timeout)) exceeds the baseline share by `margin`
//!   (5 percentage points), with at least `min_timeouts` (2) timeouts, and that many
//!   timeouts among that many probes would be a chance below `significance` (10⁻⁴) at the
//!   baseline rate (a binomial tail; the rate is taken about one standard deviation above
//!   its estimate, so that a young or lucky baseline without timeouts does not make two of
//!   them look impossible). The noisier the baseline, the more timeouts it takes: 2 of 20
//!   after a clean day, 3 at a 0.2 % baseline, 4 at 1 %. Once pending, the condition holds
//!   while the excess stays at or above `resolve_margin` (2.5 points).
//! - **CircuitOpen** and **DeploymentDrift**: external conditions, set per target.
//! - **SessionsDropping**, for `session:` targets (fed by [`Detector::observe_session`]):
//!   over the recent window at least `min_disconnects` (3) disconnects, at least `ratio`
//!   (2×) the baseline's disconnects per session-hour held, and a Poisson chance below
//!   `significance` (10⁻⁴) at the baseline rate (taken about one standard deviation high),
//!   once the baseline holds `min_baseline_held` (1 h) of sessions. The description gives
//!   the median lifetime, recent and baseline. Once pending, it holds while the recent
//!   rate stays at or above `ratio` × the baseline's.
//! - **SessionsBelowConfigured**: fewer sessions open than configured (the open count
//!   is reported about every second).
//! - **SessionPingRTTRegression**, **SessionHeartbeatRTTRegression**: the round trips of
//!   held sessions, with LatencyRegression's condition and its own settings `session_rtt`.
//!
//! Not enough samples counts as "condition false": an alert is never raised without the
//! data to back it, and a latency alert whose phase stops producing timings (because the
//! probe now fails before it) resolves, leaving the outage to ProbeFailing and
//! TimeoutRegression.
//!
//! # Lifecycle
//!
//! inactive → pending (condition true) → firing (true for `for`: ProbeFailing 0 s,
//! LatencyRegression 3 m, TimeoutRegression 1 m, CircuitOpen 1 m, DeploymentDrift 10 m,
//! SessionsDropping 5 m, SessionsBelowConfigured 2 m, session round trips 3 m) →
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
//! defaults (validation caps each window at [`MAX_BUCKETS_PER_WINDOW`](config::MAX_BUCKETS_PER_WINDOW)
//! buckets), plus two merged baselines kept for reuse. A sketch takes at most
//! `SKETCH_MAX_BYTES` (8.25 KiB: latencies are clamped to
//! [`SKETCH_MAX_SECONDS`](window::SKETCH_MAX_SECONDS), which bounds its bins), and in practice
//! 1 KiB. So one latency series costs at most 42 × 8.25 KiB ≈ 347 KiB (about 45 KiB
//! typical; the detector's memory test holds the defaults to these figures), and
//! a target with P timed phases and S steps at most (P + S) times that: with 7 phases and 5
//! steps, under 4.1 MiB (about 0.5 MiB typical). Count buckets are 16 bytes. Step series are
//! bounded by the configured steps (the caller passes only results of configured targets,
//! whose step names are configured names), and in any case by
//! [`MAX_STEPS_PER_TARGET`](target::MAX_STEPS_PER_TARGET).
//! A `session:` target adds four series (lifetimes, time held, ping and heartbeat round
//! trips) of the same bounded shape.
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
//!
//! # Where things are
//!
//! This file is the API. `target` holds a target's state, updates it from each result and
//! evaluates its alerts through the table of `rules` (one file per rule, with its
//! settings); `alert` is alert identity and lifecycle, `window` the buckets and sketches,
//! `stats` the statistics, `format` how numbers are written, `config` the settings as a
//! whole and their validation, `state` persistence.

// These docs are for the crate's own developers: most of what they name is crate-internal.
#![allow(rustdoc::private_intra_doc_links)]

mod alert;
mod config;
mod format;
mod rules;
mod sessions;
mod state;
mod stats;
mod target;
mod window;

use std::collections::BTreeMap;

pub use alert::{Alert, AlertKey, AlertKind, AlertState, Measurement, Signal, Subject, Transition};
pub use config::{DetectorConfig, Severity};
pub use rules::{
    CircuitOpenConfig, DeploymentDriftConfig, LatencyBaseline, LatencyConfig, ProbeFailingConfig, Quantile,
    SessionsBelowConfiguredConfig, SessionsDroppingConfig, TimeoutConfig,
};
pub use sessions::SessionEvent;
pub(crate) use state::DetectorState;

use target::{SignalState, TargetState};
use window::Layout;

use crate::probe::ProbeResult;

/// The regression detector. See the module documentation.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    layout: Layout,
    targets: BTreeMap<String, TargetState>,
}

impl Detector {
    /// A detector with no history. `config` should have passed [`DetectorConfig::validate`].
    pub(crate) fn new(config: DetectorConfig) -> Self {
        let layout = config.layout();
        Self { config, layout, targets: BTreeMap::new() }
    }

    /// Takes one probe result into account at `now` (Unix seconds) and re-evaluates its
    /// target's alerts.
    pub(crate) fn observe(&mut self, result: &ProbeResult, now: f64) -> Vec<Transition> {
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

    /// Takes one event of a held session of `target` into account at `now`. Disconnects and
    /// open counts re-evaluate the target's alerts at once; round trips, which arrive by
    /// the thousand on a large target, are only recorded and evaluated at the next tick.
    pub(crate) fn observe_session(
        &mut self,
        target: &str,
        event: &SessionEvent,
        now: f64,
    ) -> Vec<Transition> {
        if !now.is_finite() {
            return Vec::new();
        }
        let (config, layout) = (&self.config, &self.layout);
        let state = match self.targets.get_mut(target) {
            Some(t) => t,
            None => self.targets.entry(target.to_owned()).or_default(),
        };
        state.roll(layout, now);
        state.sessions.record(event, layout, now);
        if event.evaluates() {
            state.evaluate(target, config, layout, now)
        } else {
            Vec::new()
        }
    }

    /// Re-evaluates every target at `now`: alerts whose `for` or `resolve_after` has run
    /// out change state, and data leaves the windows.
    pub(crate) fn tick(&mut self, now: f64) -> Vec<Transition> {
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
    pub(crate) fn set_condition(
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
    pub(crate) fn alerts(&self) -> Vec<Alert> {
        self.targets.keys().flat_map(|name| self.alerts_of(name)).collect()
    }

    /// One target's part of [`Self::alerts`].
    pub(crate) fn alerts_of(&self, name: &str) -> Vec<Alert> {
        let Some(target) = self.targets.get(name) else { return Vec::new() };
        let alerts = target.alerts.iter().map(|((kind, subject), lc)| {
            let key = AlertKey { kind: *kind, target: name.to_owned(), subject: subject.clone() };
            lc.alert(key, self.config.timing(*kind).severity)
        });
        alerts.collect()
    }

    /// Drops every target `keep` rejects (e.g. after a reload removed it). Its firing
    /// alerts resolve and its pending ones go inactive; the transitions are returned.
    pub(crate) fn retain_targets(&mut self, mut keep: impl FnMut(&str) -> bool, now: f64) -> Vec<Transition> {
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
}

#[cfg(test)]
mod tests;
