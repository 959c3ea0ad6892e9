//! When each target is probed: its own interval with jitter, one probe at a time, under
//! the optional global cap of [`crate::slots`].
//!
//! Each target runs in its own task. The first probe is offset so that N targets spread
//! over one interval instead of firing together. A probe that overruns its interval makes
//! the missed ticks count as skipped: a target is never probed twice at once.
//!
//! The task owns the target's circuit breaker ([`crate::breaker`]): every result is fed
//! to it, and while it is open or half-open the target is probed every `open_interval`
//! (the first probe after the recovery timeout is the half-open trial). The task also starts
//! the target's health checks and remote-breaker poll ([`crate::health`]), which end with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Prepared;
use crate::breaker::{self, Breaker, CircuitStatus, Transition};
use crate::probe::ProbeResult;
use crate::state::{Event, StateHandle, WatchEvent};
use crate::target::metrics::TargetMetrics;
use crate::util::time::PhaseText;

/// The target task's one sink. Probe results go to the log, the metrics, the record
/// file, the alert engine and the state task, in that order; breaker transitions and
/// health readings (as [`crate::health::Report`]) to the same places.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub metrics: TargetMetrics,
    pub state: StateHandle,
    /// `--record FILE`: every result appended as a JSON line.
    pub record: Option<crate::record::RecordHandle>,
    /// The alert engine, when alerting is configured.
    pub alerts: Option<crate::alerting::AlertsHandle>,
    /// The target's `phase_histograms` (every phase until its task starts).
    pub phases: crate::probe::PhaseHistograms,
    /// The status page's history.
    pub history: crate::history::HistoryHandle,
    /// The target's probe series, once looked up; one per target task ([`Self::for_target`]).
    pub series: Arc<crate::probe::metrics::TargetSeries>,
    /// Whether the target's last result succeeded: a success after a success is routine
    /// and logged at `debug`; one per target task, like `series`.
    pub last_succeeded: Arc<AtomicBool>,
}

impl Recorder {
    pub async fn record(&self, result: ProbeResult) {
        let routine = self.last_succeeded.swap(result.success, Ordering::Relaxed) && result.success;
        log_result(&result, routine);
        self.metrics.probe.observe_cached(&result, self.phases, &self.series);
        if let Some(r) = &self.record {
            r.record(&result);
        }
        if let Some(a) = &self.alerts {
            a.observe(&result);
        }
        self.history.record(&result);
        self.state.send(Event::Result(Box::new(result))).await;
    }

    /// This sink for one target's task: its `phase_histograms` and a cache of its own.
    pub(crate) fn for_target(mut self, phases: crate::probe::PhaseHistograms) -> Self {
        self.phases = phases;
        self.series = Arc::default();
        self.last_succeeded = Arc::default();
        self
    }

    /// News from the breaker, a health check or the remote-breaker poll: to the state,
    /// then the target's resulting status to the history.
    pub(crate) async fn watch(&self, target: &str, event: WatchEvent) {
        self.state.send(Event::Watch { target: target.to_owned(), event }).await;
        if let Some(watched) = self.state.watched(target) {
            self.history.watched(target, watched);
        }
    }

    async fn skipped(&self, target: &str, count: u64) {
        self.metrics.probes_skipped.with_label_values(&[target]).inc_by(count);
        tracing::warn!(
            target_name = target,
            skipped = count,
            "The previous probe overran the interval; skipping the probes that were due meanwhile."
        );
        self.state.send(Event::Skipped { target: target.to_owned(), count }).await;
    }
}

/// One log line per probe result, with the same fields as the failure metric. A failure
/// is a warning. A success is news (`info`) when it is the target's first result or ends a
/// run of failures, and `routine` (`debug`) when the result before it succeeded too: at
/// hundreds of probes a second a line per success would be most of the log, and every
/// result is in the metrics, the history and `--record` anyway.
pub fn log_result(r: &ProbeResult, routine: bool) {
    let phases = PhaseText(|| r.phases.iter().map(|(p, s)| (p.as_str(), s)));
    // A macro, as an event's level must be a constant.
    macro_rules! succeeded {
        ($level:expr) => {
            tracing::event!(
                $level,
                target_name = %r.target,
                success = true,
                duration_seconds = r.duration_seconds,
                phases = %phases,
                "Probe succeeded."
            )
        };
    }
    if r.success && routine {
        succeeded!(tracing::Level::DEBUG);
    } else if r.success {
        succeeded!(tracing::Level::INFO);
    } else {
        tracing::warn!(
            target_name = %r.target,
            success = false,
            reason = r.reason.map_or("", |x| x.as_str()),
            phase = r.phase.map_or("", |x| x.as_str()),
            step = r.step.as_deref().unwrap_or(""),
            http_status = r.http_status.unwrap_or(0),
            close_code = r.close_code.unwrap_or(0),
            duration_seconds = r.duration_seconds,
            phases = %phases,
            detail = r.message.as_deref().unwrap_or(""),
            "Probe failed."
        );
    }
}

/// The delay before a target's first probe: its share of one interval.
pub(crate) fn initial_offset(interval: Duration, index: usize, count: usize) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    interval.mul_f64(index as f64 / count as f64)
}

/// One interval with jitter applied: uniformly within `interval × (1 ± jitter)`.
pub(crate) fn jittered(interval: Duration, jitter_fraction: f64) -> Duration {
    if jitter_fraction <= 0.0 {
        return interval;
    }
    let f = rand::rng().random_range(-jitter_fraction..=jitter_fraction);
    interval.mul_f64((1.0 + f).max(0.0))
}

/// Starts the task that probes one target until `cancel` fires, first at `first_due` (at
/// once if that has passed by the time the task runs).
pub(crate) fn spawn_target(
    prepared: Prepared,
    first_due: Instant,
    limit: Arc<Semaphore>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let recorder = recorder.for_target(prepared.target.phase_histograms);
    let span = tracing::info_span!("target", name = %prepared.name());
    tokio::spawn(target_loop(prepared, first_due, limit, recorder, cancel).instrument(span))
}

async fn target_loop(
    prepared: Prepared,
    first_due: Instant,
    limit: Arc<Semaphore>,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let t = &prepared.target;
    let started = WatchEvent::Started {
        checks: t.health.iter().map(|c| c.name.clone()).collect(),
        reports_version: t.health.iter().any(|c| c.version_path.is_some()),
        remote_breakers: t.remote_breakers.is_some(),
    };
    recorder.watch(&t.name, started).await;
    let mut watchers = prepared.watchers.spawn(&t.name, &recorder, &cancel);
    probe_loop(&prepared, first_due, &limit, &recorder, &cancel).await;
    // The probe loop ends on cancellation, which the watchers have seen too.
    watchers.shutdown().await;
}

async fn probe_loop(
    prepared: &Prepared,
    first_due: Instant,
    limit: &Arc<Semaphore>,
    recorder: &Recorder,
    cancel: &CancellationToken,
) {
    let (prober, t) = (&prepared.prober, &prepared.target);
    let interval = t.interval;
    let jitter = t.jitter.fraction();
    let mut circuit = Circuit::start(prober.name(), t.circuit_breaker, interval, recorder).await;
    // A slot that passed while the task was starting is not a late probe: the schedule
    // begins when the task does.
    let mut next = first_due.max(Instant::now());
    loop {
        // Also wakes when the breaker's recovery timeout ends, so `half_open` shows when it
        // begins; the trial itself is the next probe due, so the cadence stays `open_interval`.
        loop {
            let wake = circuit.deadline().map_or(next, |d| d.min(next));
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            circuit.poll(now, recorder).await;
            if now >= next {
                break;
            }
        }
        let Some(_permit) =
            crate::slots::acquire(limit, prober.name(), &recorder.metrics.slots, cancel).await
        else {
            return;
        };
        // Late for any reason (a busy runtime, a slot wait): never silently.
        recorder.metrics.lateness.started(prober.name(), circuit.probe_interval(), next, Instant::now());
        recorder.metrics.probes_in_flight.inc();
        // Boxed: a probe's future (the connection, the library's socket, the scenario) is
        // about 33 KB, and held inline it would be room in every target's task for good,
        // 330 MB at 10,000 targets. Boxed, only the probes in flight hold it.
        let result = Box::pin(prober.probe(cancel)).await;
        recorder.metrics.probes_in_flight.dec();
        let Some(result) = result else { return };
        let failure = (!result.success).then(|| failure_summary(&result));
        recorder.record(result).await;
        circuit.observe(failure.as_deref(), Instant::now(), recorder).await;

        // While the breaker is open or half-open, `open_interval` spares the service.
        let every = circuit.probe_interval();
        next += jittered(every, jitter);
        let skipped;
        (next, skipped) = catch_up(next, Instant::now(), every);
        if skipped > 0 {
            recorder.skipped(prober.name(), skipped).await;
        }
    }
}

/// After an overrun: the first tick after `now` on the `every` grid through `next`, and how
/// many ticks were missed on the way (0 when `next` is still ahead).
/// Computed, not looped: a short interval after a long stall costs one step, not one per tick.
fn catch_up(next: Instant, now: Instant, every: Duration) -> (Instant, u64) {
    if next > now {
        return (next, 0);
    }
    let every_ns = every.as_nanos().max(1);
    let behind_ns = (now - next).as_nanos();
    let skipped = u64::try_from(behind_ns / every_ns + 1).unwrap_or(u64::MAX);
    // `every` is at most a day (validated), so what is left of it fits in u64 nanoseconds.
    let to_tick = u64::try_from(every_ns - behind_ns % every_ns).unwrap_or(u64::MAX);
    (crate::util::time::deadline(now, Duration::from_nanos(to_tick)), skipped)
}

/// A failure as the breaker's reason quotes it: `handshake_status in handshake (HTTP 404)`.
pub(super) fn failure_summary(r: &ProbeResult) -> String {
    let mut s =
        format!("{} in {}", r.reason.map_or("?", |x| x.as_str()), r.phase.map_or("?", |x| x.as_str()));
    if let Some(step) = &r.step {
        s.push_str(&format!(" `{step}`"));
    }
    if let Some(status) = r.http_status.filter(|s| *s != 101) {
        s.push_str(&format!(" (HTTP {status})"));
    }
    s
}

/// A target's breaker with what follows from it: metrics, logs and `/api/targets`.
pub(super) struct Circuit {
    target: String,
    breaker: Breaker,
    /// The target's interval, used while closed.
    interval: Duration,
    transitions: u64,
}

impl Circuit {
    pub(super) async fn start(
        target: &str,
        settings: breaker::Settings,
        interval: Duration,
        recorder: &Recorder,
    ) -> Self {
        let breaker = Breaker::new(settings, Instant::now().into_std());
        let circuit = Self { target: target.to_owned(), breaker, interval, transitions: 0 };
        recorder.metrics.circuit.set(target, circuit.breaker.state(), circuit.since_unix());
        circuit.publish(recorder).await;
        circuit
    }

    fn deadline(&self) -> Option<Instant> {
        self.breaker.deadline().map(Instant::from_std)
    }

    fn probe_interval(&self) -> Duration {
        breaker::probe_interval(self.breaker.state(), self.interval, self.breaker.settings().open_interval)
    }

    /// Lets time act: open becomes half-open once the recovery timeout has passed.
    pub(super) async fn poll(&mut self, now: Instant, recorder: &Recorder) {
        if let Some(t) = self.breaker.poll(now.into_std()) {
            self.announce(&[t], recorder).await;
        }
    }

    /// Feeds a probe outcome: `failure` describes a failed probe, `None` is a success.
    pub(super) async fn observe(&mut self, failure: Option<&str>, now: Instant, recorder: &Recorder) {
        let outcome = failure.map_or(breaker::Outcome::Success, breaker::Outcome::Failure);
        let changes = self.breaker.record(outcome, now.into_std());
        if changes.is_empty() {
            // Only the counts the API shows moved; the history keeps states, not counts.
            let status = WatchEvent::Circuit(self.status());
            recorder.state.send(Event::Watch { target: self.target.clone(), event: status }).await;
        } else {
            self.announce(&changes, recorder).await;
        }
    }

    async fn announce(&mut self, changes: &[Transition], recorder: &Recorder) {
        let t = &self.target;
        for c in changes {
            self.transitions += 1;
            recorder.metrics.circuit.transition(t, c.from, c.to);
            let (from, to, reason) = (c.from.as_str(), c.to.as_str(), c.reason.as_str());
            if c.to == breaker::State::Open {
                tracing::warn!(target_name = %t, from, to, reason, "The circuit breaker opened: {reason}.");
            } else {
                tracing::info!(target_name = %t, from, to, reason, "The circuit breaker is now {to}: {reason}.");
            }
        }
        recorder.metrics.circuit.set(t, self.breaker.state(), self.since_unix());
        // The detector's CircuitOpen alert: clients would be tripping while it is not closed.
        if let (Some(alerts), Some(last)) = (&recorder.alerts, changes.last()) {
            let open = self.breaker.state() != breaker::State::Closed;
            let detail = format!("the circuit is {}: {}", last.to.as_str(), last.reason);
            alerts.set_condition(t, crate::detect::Signal::CircuitOpen, open, Some(detail));
        }
        self.publish(recorder).await;
    }

    /// Unix time the current state began (it may have begun before it was noticed).
    fn since_unix(&self) -> f64 {
        let ago = Instant::now().into_std().saturating_duration_since(self.breaker.since());
        let now = crate::util::time::since_epoch();
        crate::util::json::round_millis(now.saturating_sub(ago).as_secs_f64())
    }

    async fn publish(&self, recorder: &Recorder) {
        recorder.watch(&self.target, WatchEvent::Circuit(self.status())).await;
    }

    fn status(&self) -> CircuitStatus {
        let b = &self.breaker;
        CircuitStatus {
            state: b.state(),
            since: self.since_unix(),
            reason: b.reason().to_owned(),
            consecutive_failures: b.consecutive_failures(),
            consecutive_successes: b.consecutive_successes(),
            transitions: self.transitions,
            probe_interval_seconds: self.probe_interval().as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_round_is_spread_over_the_interval() {
        let i = Duration::from_secs(20);
        let offsets: Vec<_> = (0..4).map(|k| initial_offset(i, k, 4)).collect();
        assert_eq!(offsets, [0, 5, 10, 15].map(Duration::from_secs));
        assert_eq!(initial_offset(i, 0, 1), Duration::ZERO);
    }

    #[test]
    fn catching_up_costs_the_same_however_many_ticks_were_missed() {
        let next = Instant::now();
        let tick = Duration::from_millis(100);
        assert_eq!(catch_up(next + tick, next, tick), (next + tick, 0));
        assert_eq!(catch_up(next, next, tick), (next + tick, 1));
        assert_eq!(catch_up(next, next + Duration::from_millis(250), tick), (next + 3 * tick, 3));
        // An hour behind on a 1 ns grid: 3.6e12 ticks, which a loop would spin through.
        let started = std::time::Instant::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            catch_up(next, next + hour, Duration::from_nanos(1)),
            (next + hour + Duration::from_nanos(1), 3_600_000_000_001)
        );
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let i = Duration::from_secs(10);
        for _ in 0..1000 {
            let d = jittered(i, 0.1);
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11), "{d:?}");
        }
        assert_eq!(jittered(i, 0.0), i);
    }
}
