//! The probe's metrics: what one probe result says, per target.
//!
//! Registered on the daemon's registry; every series is per target and tracked, so the
//! target's removal takes them all. Label values are configured names and the closed
//! enums [`Phase`](super::Phase) and [`Reason`](super::Reason).

use crate::metrics::{Error, Registry, TargetCounter, TargetGauge, TargetHistogram, TargetIntGauge, Tracker};

use super::{PhaseHistograms, ProbeResult};

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
        let t = r.target.as_str();
        self.success.with_label_values(&[t]).set(if r.success { 1.0 } else { 0.0 });
        let result = if r.success { "success" } else { "failure" };
        self.total.with_label_values(&[t, result]).inc();
        if let (Some(phase), Some(reason)) = (r.phase, r.reason) {
            self.failures.with_label_values(&[t, phase.as_str(), reason.as_str()]).inc();
        }
        self.duration.with_label_values(&[t]).observe(r.duration_seconds);
        for (phase, secs) in r.phases.iter().filter(|(p, _)| phases.exports(*p)) {
            self.phase_duration.with_label_values(&[t, phase.as_str()]).observe(secs);
        }
        for step in r.steps.iter().filter(|s| s.ok) {
            self.step_duration.with_label_values(&[t, &step.name]).observe(step.duration_seconds);
        }
        let gaps = self.message_gap.with_label_values(&[t]);
        for gap in &r.message_gaps {
            gaps.observe(*gap);
        }
        if r.success {
            self.last_success.with_label_values(&[t]).set(r.started_at + r.duration_seconds);
        }
        self.handshake_status.with_label_values(&[t]).set(r.http_status.map_or(0, i64::from));
        if let Some(expiry) = r.tls_cert_expiry {
            self.tls_cert_expiry.with_label_values(&[t]).set(expiry as f64);
        }
        self.messages_received.with_label_values(&[t]).inc_by(r.messages_received);
        self.messages_sent.with_label_values(&[t]).inc_by(r.messages_sent);
    }
}
