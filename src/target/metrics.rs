//! The metrics a target task records: its probes', its breaker's, its health checks',
//! its waits for a probe slot, and the scheduler's own (skipped and in-flight probes).
//!
//! Each feature registers its part itself; this only gathers them for the task and
//! registers the scheduler's two. Removing a target is one [`TargetMetrics::forget`].

use prometheus::IntGauge;

use super::lateness::Lateness;

use crate::breaker::metrics::CircuitMetrics;
use crate::health::metrics::HealthMetrics;
use crate::metrics::{Error, Registry, TargetCounter, Tracker};
use crate::probe::metrics::ProbeMetrics;
use crate::session::metrics::SessionMetrics;
use crate::slots::SlotMetrics;

#[derive(Debug, Clone)]
pub struct TargetMetrics {
    pub probe: ProbeMetrics,
    pub circuit: CircuitMetrics,
    pub health: HealthMetrics,
    /// Held sessions of `session:` targets.
    pub session: SessionMetrics,
    /// Probes that waited for a `max_concurrent_probes` slot.
    pub slots: SlotMetrics,
    pub probes_skipped: TargetCounter,
    pub probes_in_flight: IntGauge,
    /// Probes that started later than due (the scheduler could not keep up).
    pub(crate) lateness: Lateness,
    tracker: Tracker,
}

impl TargetMetrics {
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            probe: ProbeMetrics::register(registry)?,
            circuit: CircuitMetrics::register(registry)?,
            health: HealthMetrics::register(registry)?,
            session: SessionMetrics::register(registry)?,
            slots: SlotMetrics::register(registry)?,
            probes_skipped: registry.target_counter(
                "wsprobe_probes_skipped_total",
                "Scheduled probes skipped because the previous probe of the target was still running.",
                &["target"],
            )?,
            probes_in_flight: registry.int_gauge("wsprobe_probes_in_flight", "Probes running now.")?,
            lateness: Lateness::new(
                registry.target_counter(
                    "wsprobe_probes_late_total",
                    "Probes that started later than a tenth of their interval (at least 100 ms, at most 5 s) after they were due.",
                    &["target"],
                )?,
                registry.latency_histogram(
                    "wsprobe_probe_start_lag_seconds",
                    "How long after it was due each probe started, across targets.",
                )?,
            ),
            tracker: registry.tracker().clone(),
        })
    }

    /// Creates a target's always-present series, so `rate()` and `absent()` work from
    /// the first scrape rather than from the first failure.
    pub fn add_target(&self, target: &str) {
        self.probe.add_target(target);
        self.probes_skipped.with_label_values(&[target]);
        self.slots.delayed.with_label_values(&[target]);
        self.lateness.late.with_label_values(&[target]);
    }

    /// Removes every series of a target that left the configuration, of every metric.
    pub fn forget(&self, target: &str) {
        self.tracker.forget(target);
    }
}
