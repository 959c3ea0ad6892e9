//! When each target is probed: its own interval with jitter, one probe at a time, under
//! a global concurrency limit.
//!
//! Each target runs in its own task. The first probe is offset so that N targets spread
//! over one interval instead of firing together. A probe that overruns its interval makes
//! the missed ticks count as skipped: a target is never probed twice at once.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::probe::{ProbeResult, Prober};
use crate::state::{Event, StateHandle};

/// Where results go: the log, the metrics and the state task, in that order.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub metrics: Metrics,
    pub state: StateHandle,
}

impl Recorder {
    pub async fn record(&self, result: ProbeResult) {
        log_result(&result);
        self.metrics.observe(&result);
        self.state.send(Event::Result(Box::new(result))).await;
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

/// One log line per probe result, with the same fields as the failure metric.
pub fn log_result(r: &ProbeResult) {
    let phases: Vec<String> =
        r.phases.iter().map(|(p, s)| format!("{}={:.1}ms", p.as_str(), s * 1000.0)).collect();
    let phases = phases.join(" ");
    if r.success {
        tracing::info!(
            target_name = %r.target,
            success = true,
            duration_seconds = r.duration_seconds,
            phases = %phases,
            "Probe succeeded."
        );
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
pub fn initial_offset(interval: Duration, index: usize, count: usize) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    interval.mul_f64(index as f64 / count as f64)
}

/// One interval with jitter applied: uniformly within `interval × (1 ± jitter)`.
pub fn jittered(interval: Duration, jitter_fraction: f64) -> Duration {
    if jitter_fraction <= 0.0 {
        return interval;
    }
    let f = rand::rng().random_range(-jitter_fraction..=jitter_fraction);
    interval.mul_f64((1.0 + f).max(0.0))
}

/// Starts the task that probes one target until `cancel` fires.
pub fn spawn_target(
    prober: Prober,
    offset: Duration,
    limit: Arc<Semaphore>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let span = tracing::info_span!("target", name = %prober.name());
    tokio::spawn(target_loop(prober, offset, limit, recorder, cancel).instrument(span))
}

async fn target_loop(
    prober: Prober,
    offset: Duration,
    limit: Arc<Semaphore>,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let interval = prober.target.interval;
    let jitter = prober.target.jitter.fraction();
    let mut next = Instant::now() + offset;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            p = limit.clone().acquire_owned() => p,
        };
        let Ok(_permit) = permit else { return };
        recorder.metrics.probes_in_flight.inc();
        let result = prober.probe(&cancel).await;
        recorder.metrics.probes_in_flight.dec();
        let Some(result) = result else { return };
        recorder.record(result).await;

        next += jittered(interval, jitter);
        let now = Instant::now();
        let mut skipped = 0;
        while next <= now {
            next += interval;
            skipped += 1;
        }
        if skipped > 0 {
            recorder.skipped(prober.name(), skipped).await;
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
    fn jitter_stays_within_bounds() {
        let i = Duration::from_secs(10);
        for _ in 0..1000 {
            let d = jittered(i, 0.1);
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11), "{d:?}");
        }
        assert_eq!(jittered(i, 0.0), i);
    }
}
