//! Every metric wsprobe exports, in one place.
//!
//! Metrics live on a private `Registry` and are handed out as one [`Metrics`] struct.
//! Label values come only from configured names and the closed enums of `probe`
//! (`Phase`, `Reason`), so cardinality is bounded by the configuration.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::probe::ProbeResult;

/// One bucket set for every latency: 1 ms to 120 s (the longest default timeout).
pub const LATENCY_BUCKETS: [f64; 17] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0];

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("WSPROBE_REVISION");

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub probe_success: GaugeVec,
    pub probes_total: IntCounterVec,
    pub probe_failures_total: IntCounterVec,
    pub probe_duration: HistogramVec,
    pub phase_duration: HistogramVec,
    pub step_duration: HistogramVec,
    pub message_gap: HistogramVec,
    pub last_success: GaugeVec,
    pub handshake_status: IntGaugeVec,
    pub tls_cert_expiry: GaugeVec,
    pub messages_received: IntCounterVec,
    pub messages_sent: IntCounterVec,
    pub probes_skipped: IntCounterVec,
    pub probes_in_flight: IntGauge,
    pub targets: IntGauge,
    pub reload_successful: IntGauge,
    pub reload_timestamp: Gauge,
}

impl Metrics {
    /// Creates and registers every metric. Fails only on a programming error (a bad name).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let hist = |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let m = Self {
            probe_success: gauge(
                "wsprobe_probe_success",
                "Whether the last probe of the target succeeded (1) or failed (0).",
                &["target"],
            )?,
            probes_total: counter(
                "wsprobe_probes_total",
                "Probes completed, by result (success or failure).",
                &["target", "result"],
            )?,
            probe_failures_total: counter(
                "wsprobe_probe_failures_total",
                "Failed probes by the phase that failed and the reason.",
                &["target", "phase", "reason"],
            )?,
            probe_duration: hist("wsprobe_probe_duration_seconds", "Duration of whole probes.", &["target"])?,
            phase_duration: hist(
                "wsprobe_phase_duration_seconds",
                "Duration of each completed probe phase.",
                &["target", "phase"],
            )?,
            step_duration: hist(
                "wsprobe_step_duration_seconds",
                "Duration of each completed scenario step.",
                &["target", "step"],
            )?,
            message_gap: hist(
                "wsprobe_message_gap_seconds",
                "Time between consecutive data messages received.",
                &["target"],
            )?,
            last_success: gauge(
                "wsprobe_last_success_timestamp_seconds",
                "Unix time at which the last successful probe of the target ended.",
                &["target"],
            )?,
            handshake_status: int_gauge(
                "wsprobe_handshake_status",
                "HTTP status of the last upgrade answer (101 when it succeeded, 0 when none came).",
                &["target"],
            )?,
            tls_cert_expiry: gauge(
                "wsprobe_tls_cert_expiry_timestamp_seconds",
                "Unix time at which the server's leaf certificate expires.",
                &["target"],
            )?,
            messages_received: counter(
                "wsprobe_messages_received_total",
                "Data messages received from the target.",
                &["target"],
            )?,
            messages_sent: counter(
                "wsprobe_messages_sent_total",
                "Data messages sent to the target.",
                &["target"],
            )?,
            probes_skipped: counter(
                "wsprobe_probes_skipped_total",
                "Scheduled probes skipped because the previous probe of the target was still running.",
                &["target"],
            )?,
            probes_in_flight: {
                let g = IntGauge::new("wsprobe_probes_in_flight", "Probes running now.")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            targets: {
                let g = IntGauge::new("wsprobe_targets", "Targets in the loaded configuration.")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            reload_successful: {
                let g = IntGauge::new(
                    "wsprobe_config_last_reload_successful",
                    "Whether the last configuration (re)load succeeded (1) or was rejected (0).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            reload_timestamp: {
                let g = Gauge::new(
                    "wsprobe_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("wsprobe_build_info", "Always 1; labels carry the running build."),
            &["version", "revision"],
        )?;
        m.registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[VERSION, REVISION]).set(1);
        Ok(m)
    }

    /// Creates a target's always-present series, so `rate()` and `absent()` work from
    /// the first scrape rather than from the first failure.
    pub fn add_target(&self, target: &str) {
        for result in ["success", "failure"] {
            self.probes_total.with_label_values(&[target, result]);
        }
        self.probes_skipped.with_label_values(&[target]);
        self.messages_received.with_label_values(&[target]);
        self.messages_sent.with_label_values(&[target]);
    }

    /// Removes every series of a target that left the configuration; `steps` are the
    /// step names it had.
    pub fn remove_target(&self, target: &str, steps: &[String]) {
        use crate::probe::{Phase, Reason};
        // Errors here only mean "no such series", which is what we want.
        for v in [&self.probe_success, &self.last_success, &self.tls_cert_expiry] {
            let _ = v.remove_label_values(&[target]);
        }
        for v in [&self.messages_received, &self.messages_sent, &self.probes_skipped] {
            let _ = v.remove_label_values(&[target]);
        }
        let _ = self.handshake_status.remove_label_values(&[target]);
        let _ = self.probe_duration.remove_label_values(&[target]);
        let _ = self.message_gap.remove_label_values(&[target]);
        for result in ["success", "failure"] {
            let _ = self.probes_total.remove_label_values(&[target, result]);
        }
        for phase in Phase::ALL {
            let _ = self.phase_duration.remove_label_values(&[target, phase.as_str()]);
            for reason in Reason::ALL {
                let _ =
                    self.probe_failures_total.remove_label_values(&[target, phase.as_str(), reason.as_str()]);
            }
        }
        self.remove_steps(target, steps);
    }

    /// Removes the step series of steps a target no longer has.
    pub fn remove_steps(&self, target: &str, steps: &[String]) {
        for step in steps {
            let _ = self.step_duration.remove_label_values(&[target, step]);
        }
    }

    /// Records one probe result in every metric it touches.
    pub fn observe(&self, r: &ProbeResult) {
        let t = r.target.as_str();
        self.probe_success.with_label_values(&[t]).set(if r.success { 1.0 } else { 0.0 });
        let result = if r.success { "success" } else { "failure" };
        self.probes_total.with_label_values(&[t, result]).inc();
        if let (Some(phase), Some(reason)) = (r.phase, r.reason) {
            self.probe_failures_total.with_label_values(&[t, phase.as_str(), reason.as_str()]).inc();
        }
        self.probe_duration.with_label_values(&[t]).observe(r.duration_seconds);
        for (phase, secs) in r.phases.iter() {
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "Could not encode metrics.");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
