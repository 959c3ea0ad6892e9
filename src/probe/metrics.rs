//! The probe's metrics: what one probe result says, per target.
//!
//! Registered on the daemon's registry; every series is per target and tracked, so the
//! target's removal takes them all. Label values are configured names and the closed
//! enums [`Phase`](super::Phase) and [`Reason`](super::Reason).

use std::sync::OnceLock;

use crate::metrics::{
    CounterSeries, Error, GaugeSeries, IntGaugeSeries, LatencyHistogram, Registry, TargetCounter,
    TargetGauge, TargetHistogram, TargetIntGauge, Tracker,
};

use super::{Phase, PhaseHistograms, ProbeResult};

/// One target's series that every probe touches, each looked up on its first use and
/// then kept: a probe then costs no label hashing or lookup for them. Each series is
/// still created only when first recorded, as without the cache. A target task owns one
/// (a restarted task starts a new one); results of another target pass it by.
#[derive(Debug, Default)]
pub struct TargetSeries {
    target: OnceLock<String>,
    success: OnceLock<GaugeSeries>,
    succeeded: OnceLock<CounterSeries>,
    failed: OnceLock<CounterSeries>,
    duration: OnceLock<LatencyHistogram>,
    phases: [OnceLock<LatencyHistogram>; Phase::ALL.len()],
    gaps: OnceLock<LatencyHistogram>,
    last_success: OnceLock<GaugeSeries>,
    handshake_status: OnceLock<IntGaugeSeries>,
    tls_cert_expiry: OnceLock<GaugeSeries>,
    received: OnceLock<CounterSeries>,
    sent: OnceLock<CounterSeries>,
}

#[derive(Debug, Clone)]
pub struct ProbeMetrics {
    pub success: TargetGauge,
    pub total: TargetCounter,
    pub failures: TargetCounter,
    pub duration: TargetHistogram,
    pub phase_duration: TargetHistogram,
    pub step_duration: TargetHistogram,
    pub message_gap: TargetHistogram,
    pub last_success: TargetGauge,
    pub handshake_status: TargetIntGauge,
    pub tls_cert_expiry: TargetGauge,
    pub messages_received: TargetCounter,
    pub messages_sent: TargetCounter,
    tracker: Tracker,
}

impl ProbeMetrics {
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            success: registry.target_gauge(
                "wsprobe_probe_success",
                "Whether the last probe of the target succeeded (1) or failed (0).",
                &["target"],
            )?,
            total: registry.target_counter(
                "wsprobe_probes_total",
                "Probes completed, by result (success or failure).",
                &["target", "result"],
            )?,
            failures: registry.target_counter(
                "wsprobe_probe_failures_total",
                "Failed probes by the phase that failed and the reason.",
                &["target", "phase", "reason"],
            )?,
            duration: registry.target_histogram(
                "wsprobe_probe_duration_seconds",
                "Duration of whole probes.",
                &["target"],
            )?,
            phase_duration: registry.target_histogram(
                "wsprobe_phase_duration_seconds",
                "Duration of each completed probe phase.",
                &["target", "phase"],
            )?,
            step_duration: registry.target_histogram(
                "wsprobe_step_duration_seconds",
                "Duration of each completed scenario step.",
                &["target", "step"],
            )?,
            message_gap: registry.target_histogram(
                "wsprobe_message_gap_seconds",
                "Time between consecutive data messages received.",
                &["target"],
            )?,
            last_success: registry.target_gauge(
                "wsprobe_last_success_timestamp_seconds",
                "Unix time at which the last successful probe of the target ended.",
                &["target"],
            )?,
            handshake_status: registry.target_int_gauge(
                "wsprobe_handshake_status",
                "HTTP status of the last upgrade answer (101 when it succeeded, 0 when none came).",
                &["target"],
            )?,
            tls_cert_expiry: registry.target_gauge(
                "wsprobe_tls_cert_expiry_timestamp_seconds",
                "Unix time at which the server's leaf certificate expires.",
                &["target"],
            )?,
            messages_received: registry.target_counter(
                "wsprobe_messages_received_total",
                "Data messages received from the target.",
                &["target"],
            )?,
            messages_sent: registry.target_counter(
                "wsprobe_messages_sent_total",
                "Data messages sent to the target.",
                &["target"],
            )?,
            tracker: registry.tracker().clone(),
        })
    }

    /// Creates a target's always-present series, so `rate()` and `absent()` work from
    /// the first scrape rather than from the first failure.
    pub fn add_target(&self, target: &str) {
        for result in ["success", "failure"] {
            self.total.with_label_values(&[target, result]);
        }
        self.messages_received.with_label_values(&[target]);
        self.messages_sent.with_label_values(&[target]);
    }

    /// Drops the step series of steps the target no longer has.
    pub fn retain_steps(&self, target: &str, steps: &[&str]) {
        self.tracker.forget_where(target, |s| s.label("step").is_some_and(|step| !steps.contains(&step)));
    }

    /// Drops the phase series of phases the target no longer exports.
    pub fn retain_phases(&self, target: &str, phases: PhaseHistograms) {
        self.tracker.forget_where(target, |s| {
            s.metric() == "wsprobe_phase_duration_seconds"
                && s.label("phase").and_then(super::Phase::from_label).is_some_and(|p| !phases.exports(p))
        });
    }

    /// Records one probe result in every metric it touches.
    pub fn observe(&self, r: &ProbeResult) {
        self.observe_with(r, PhaseHistograms::ALL);
    }

    /// [`Self::observe`], exporting the phase histograms of `phases` only.
    pub fn observe_with(&self, r: &ProbeResult, phases: PhaseHistograms) {
        self.observe_cached(r, phases, &TargetSeries::default());
    }

    /// [`Self::observe_with`], keeping the series it looks up in `cache`.
    pub fn observe_cached(&self, r: &ProbeResult, phases: PhaseHistograms, cache: &TargetSeries) {
        let t = r.target.as_str();
        if cache.target.get_or_init(|| r.target.clone()) != t {
            return self.observe_with(r, phases);
        }
        let one = |cell: &OnceLock<_>, vec: &TargetCounter, labels: &[&str]| {
            cell.get_or_init(|| vec.with_label_values(labels)).clone()
        };
        cache.success.get_or_init(|| self.success.with_label_values(&[t])).set(if r.success {
            1.0
        } else {
            0.0
        });
        if r.success {
            one(&cache.succeeded, &self.total, &[t, "success"]).inc();
        } else {
            one(&cache.failed, &self.total, &[t, "failure"]).inc();
        }
        if let (Some(phase), Some(reason)) = (r.phase, r.reason) {
            self.failures.with_label_values(&[t, phase.as_str(), reason.as_str()]).inc();
        }
        cache.duration.get_or_init(|| self.duration.with_label_values(&[t])).observe(r.duration_seconds);
        for (phase, secs) in r.phases.iter().filter(|(p, _)| phases.exports(*p)) {
            cache.phases[phase as usize]
                .get_or_init(|| self.phase_duration.with_label_values(&[t, phase.as_str()]))
                .observe(secs);
        }
        for step in r.steps.iter().filter(|s| s.ok) {
            self.step_duration.with_label_values(&[t, &step.name]).observe(step.duration_seconds);
        }
        let gaps = cache.gaps.get_or_init(|| self.message_gap.with_label_values(&[t]));
        for gap in &r.message_gaps {
            gaps.observe(*gap);
        }
        if r.success {
            cache
                .last_success
                .get_or_init(|| self.last_success.with_label_values(&[t]))
                .set(r.started_at + r.duration_seconds);
        }
        cache
            .handshake_status
            .get_or_init(|| self.handshake_status.with_label_values(&[t]))
            .set(r.http_status.map_or(0, i64::from));
        if let Some(expiry) = r.tls_cert_expiry {
            cache
                .tls_cert_expiry
                .get_or_init(|| self.tls_cert_expiry.with_label_values(&[t]))
                .set(expiry as f64);
        }
        one(&cache.received, &self.messages_received, &[t]).inc_by(r.messages_received);
        one(&cache.sent, &self.messages_sent, &[t]).inc_by(r.messages_sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn a_cache_serves_its_own_target_only() {
        let registry = Registry::new().unwrap_or_else(|e| panic!("{e}"));
        let m = ProbeMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
        let cache = TargetSeries::default();
        let mut a = ProbeResult::new("a");
        a.success = true;
        let mut b = ProbeResult::new("b");
        b.success = false;
        m.observe_cached(&a, PhaseHistograms::ALL, &cache);
        m.observe_cached(&a, PhaseHistograms::ALL, &cache);
        // Another target's result through the same cache still lands on its own series.
        m.observe_cached(&b, PhaseHistograms::ALL, &cache);
        let text = registry.render();
        assert_eq!(
            line(&text, "wsprobe_probes_total{result=\"success\",target=\"a\"}"),
            Some("wsprobe_probes_total{result=\"success\",target=\"a\"} 2")
        );
        assert_eq!(
            line(&text, "wsprobe_probes_total{result=\"failure\",target=\"b\"}"),
            Some("wsprobe_probes_total{result=\"failure\",target=\"b\"} 1")
        );
        assert_eq!(
            line(&text, "wsprobe_probe_success{target=\"b\"}"),
            Some("wsprobe_probe_success{target=\"b\"} 0")
        );
        // Created on first use, as without the cache: no failure series for `a`.
        assert_eq!(line(&text, "wsprobe_probes_total{result=\"failure\",target=\"a\"}"), None);
    }
}
