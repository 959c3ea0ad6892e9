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
    /// The circuit breaker per target.
    pub circuit: CircuitMetrics,
    /// Health checks, deployment drift and remote breakers.
    pub health: HealthMetrics,
    /// Probes that waited for a `max_concurrent_probes` slot.
    pub slots: crate::slots::SlotMetrics,
    /// Connections to `/metrics` and the API.
    pub listener: crate::listener::ListenerMetrics,
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
            circuit: CircuitMetrics::register(&registry)?,
            health: HealthMetrics::register(&registry)?,
            slots: crate::slots::SlotMetrics::register(&registry)?,
            listener: crate::listener::ListenerMetrics::register(&registry)?,
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
        self.slots.delayed.with_label_values(&[target]);
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
        for v in [&self.messages_received, &self.messages_sent, &self.probes_skipped, &self.slots.delayed] {
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
        self.circuit.remove_target(target);
        self.health.retain(target, &[], &[], false);
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

/// Metrics of alert evaluation and delivery, registered on the same registry.
#[derive(Debug, Clone)]
pub struct AlertingMetrics {
    /// Notifications by receiver and outcome: sent, retried, failed, dropped.
    pub notifications: IntCounterVec,
    /// 1 for each pending or firing alert, by its identity and state.
    pub alerts: IntGaugeVec,
}

impl Metrics {
    /// Registers the alerting metrics; call once per process.
    pub fn alerting(&self) -> Result<AlertingMetrics, prometheus::Error> {
        let notifications = IntCounterVec::new(
            Opts::new(
                "wsprobe_alert_notifications_total",
                "Alert notifications by receiver and outcome (sent, retried, failed, dropped).",
            ),
            &["receiver", "outcome"],
        )?;
        self.registry.register(Box::new(notifications.clone()))?;
        let alerts = IntGaugeVec::new(
            Opts::new(
                "wsprobe_alerts",
                "Pending and firing alerts: 1 per alert, labelled with its identity and state.",
            ),
            &["alertname", "target", "scope", "severity", "state"],
        )?;
        self.registry.register(Box::new(alerts.clone()))?;
        Ok(AlertingMetrics { notifications, alerts })
    }
}

/// Removes every series of `vec` whose labels satisfy `doomed` (`name → value`).
fn remove_where<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    doomed: impl Fn(&std::collections::HashMap<&str, &str>) -> bool,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: std::collections::HashMap<&str, &str> =
                metric.get_label().iter().map(|l| (l.name(), l.value())).collect();
            if doomed(&labels) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

/// The circuit breaker per target (`crate::breaker`).
#[derive(Debug, Clone)]
pub struct CircuitMetrics {
    /// `wsprobe_circuit_state{target,state}`: 1 on the current state, 0 on the others.
    pub state: IntGaugeVec,
    pub transitions: IntCounterVec,
    pub since: GaugeVec,
}

impl CircuitMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let state = IntGaugeVec::new(
            Opts::new(
                "wsprobe_circuit_state",
                "Circuit breaker state per target: 1 on the current state (closed, open, half_open).",
            ),
            &["target", "state"],
        )?;
        let transitions = IntCounterVec::new(
            Opts::new(
                "wsprobe_circuit_transitions_total",
                "Circuit breaker transitions, by the state left and the state entered.",
            ),
            &["target", "from", "to"],
        )?;
        let since = GaugeVec::new(
            Opts::new(
                "wsprobe_circuit_state_since_timestamp_seconds",
                "Unix time at which the circuit breaker entered its current state.",
            ),
            &["target"],
        )?;
        registry.register(Box::new(state.clone()))?;
        registry.register(Box::new(transitions.clone()))?;
        registry.register(Box::new(since.clone()))?;
        Ok(Self { state, transitions, since })
    }

    /// Sets the one-hot state and the time it began.
    pub fn set(&self, target: &str, state: crate::breaker::State, since_unix: f64) {
        self.since.with_label_values(&[target]).set(since_unix);
        for s in crate::breaker::State::ALL {
            self.state.with_label_values(&[target, s.as_str()]).set(i64::from(s == state));
        }
    }

    pub fn transition(&self, target: &str, from: crate::breaker::State, to: crate::breaker::State) {
        self.transitions.with_label_values(&[target, from.as_str(), to.as_str()]).inc();
    }

    fn remove_target(&self, target: &str) {
        use crate::breaker::State;
        let _ = self.since.remove_label_values(&[target]);
        for s in State::ALL {
            let _ = self.state.remove_label_values(&[target, s.as_str()]);
            for to in State::ALL {
                let _ = self.transitions.remove_label_values(&[target, s.as_str(), to.as_str()]);
            }
        }
    }
}

/// Health checks, deployment drift and remote breakers (`crate::health`).
#[derive(Debug, Clone)]
pub struct HealthMetrics {
    pub duration: HistogramVec,
    pub success: GaugeVec,
    pub failures: IntCounterVec,
    pub http_status: IntGaugeVec,
    /// `{target,version}`: one series per target, the live version.
    pub deployment_info: IntGaugeVec,
    pub deployment_drift: IntGaugeVec,
    pub deployment_drift_seconds: GaugeVec,
    pub remote_state: IntGaugeVec,
    pub remote_failures: IntCounterVec,
}

impl HealthMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "wsprobe_health_duration_seconds",
                "Duration of health check phases (dns, connect, tls, first_byte, total), summed over redirects.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["target", "check", "phase"],
        )?;
        let success = GaugeVec::new(
            Opts::new(
                "wsprobe_health_success",
                "Whether the last run of the health check succeeded (1) or failed (0).",
            ),
            &["target", "check"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new("wsprobe_health_failures_total", "Failed health checks by reason."),
            &["target", "check", "reason"],
        )?;
        let http_status = IntGaugeVec::new(
            Opts::new(
                "wsprobe_health_http_status",
                "HTTP status of the health check's last answer, after redirects (0 when none came).",
            ),
            &["target", "check"],
        )?;
        let deployment_info = IntGaugeVec::new(
            Opts::new(
                "wsprobe_deployment_info",
                "Always 1; `version` is the live version the target reports (sanitized, at most 64 characters).",
            ),
            &["target", "version"],
        )?;
        let deployment_drift = IntGaugeVec::new(
            Opts::new(
                "wsprobe_deployment_drift",
                "1 when the live version differs from the expected one, 0 when it matches (absent when either is unknown).",
            ),
            &["target"],
        )?;
        let deployment_drift_seconds = GaugeVec::new(
            Opts::new(
                "wsprobe_deployment_drift_seconds",
                "Seconds since the live version stopped matching the expected one, as of the last check (0 without drift).",
            ),
            &["target"],
        )?;
        let remote_state = IntGaugeVec::new(
            Opts::new(
                "wsprobe_remote_circuit_state",
                "The service's own circuit breakers: 1 on the current state (closed, open, half_open, unknown).",
            ),
            &["target", "breaker", "state"],
        )?;
        let remote_failures = IntCounterVec::new(
            Opts::new(
                "wsprobe_remote_breaker_poll_failures_total",
                "Failed reads of the remote circuit breakers, by reason.",
            ),
            &["target", "reason"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(success.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(http_status.clone()))?;
        registry.register(Box::new(deployment_info.clone()))?;
        registry.register(Box::new(deployment_drift.clone()))?;
        registry.register(Box::new(deployment_drift_seconds.clone()))?;
        registry.register(Box::new(remote_state.clone()))?;
        registry.register(Box::new(remote_failures.clone()))?;
        Ok(Self {
            duration,
            success,
            failures,
            http_status,
            deployment_info,
            deployment_drift,
            deployment_drift_seconds,
            remote_state,
            remote_failures,
        })
    }

    /// Removes a target's health series except those of the checks and breakers it still
    /// has (all of them, given empty lists), and its deployment series unless it still
    /// reports a version.
    pub fn retain(&self, target: &str, checks: &[&str], breakers: &[&str], reports_version: bool) {
        let gone_check = |l: &std::collections::HashMap<&str, &str>| {
            l.get("target") == Some(&target) && !l.get("check").is_some_and(|c| checks.contains(c))
        };
        remove_where(&self.duration, gone_check);
        remove_where(&self.success, gone_check);
        remove_where(&self.failures, gone_check);
        remove_where(&self.http_status, gone_check);
        remove_where(&self.remote_state, |l| {
            l.get("target") == Some(&target) && !l.get("breaker").is_some_and(|b| breakers.contains(b))
        });
        let of_target = |l: &std::collections::HashMap<&str, &str>| l.get("target") == Some(&target);
        if breakers.is_empty() {
            remove_where(&self.remote_failures, of_target);
        }
        if !reports_version {
            remove_where(&self.deployment_info, of_target);
            remove_where(&self.deployment_drift, of_target);
            remove_where(&self.deployment_drift_seconds, of_target);
        }
    }
}

impl Metrics {
    /// Records one health check result.
    pub fn observe_health(&self, r: &crate::health::HealthResult) {
        let h = &self.health;
        let labels = [r.target.as_str(), r.check.as_str()];
        h.http_status.with_label_values(&labels).set(r.http_status.map_or(0, i64::from));
        for (phase, secs) in r.phases.iter() {
            h.duration.with_label_values(&[labels[0], labels[1], phase]).observe(secs);
        }
        if let Some(reason) = r.reason {
            h.failures.with_label_values(&[labels[0], labels[1], reason.as_str()]).inc();
        }
        // Last, so a scrape that sees the verdict also sees what came with it.
        h.success.with_label_values(&labels).set(if r.success { 1.0 } else { 0.0 });
    }

    /// Sets the live version (the only `wsprobe_deployment_info` series of the target:
    /// any other version's series is removed) and the drift gauges (`None`: unknown,
    /// removed).
    pub fn set_deployment(&self, target: &str, live: Option<&str>, drift: Option<(bool, f64)>) {
        let h = &self.health;
        if let Some(live) = live {
            let label = crate::health::version_label(live);
            remove_where(&h.deployment_info, |l| {
                l.get("target") == Some(&target) && l.get("version") != Some(&label.as_str())
            });
            h.deployment_info.with_label_values(&[target, &label]).set(1);
        }
        match drift {
            Some((drifting, seconds)) => {
                h.deployment_drift_seconds.with_label_values(&[target]).set(seconds);
                h.deployment_drift.with_label_values(&[target]).set(i64::from(drifting));
            }
            None => {
                let _ = h.deployment_drift.remove_label_values(&[target]);
                let _ = h.deployment_drift_seconds.remove_label_values(&[target]);
            }
        }
    }

    /// Sets a remote breaker's one-hot state.
    pub fn set_remote_breaker(&self, target: &str, breaker: &str, state: crate::health::RemoteState) {
        for s in crate::health::RemoteState::ALL {
            self.health
                .remote_state
                .with_label_values(&[target, breaker, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    pub fn remote_poll_failed(&self, target: &str, reason: crate::health::HealthReason) {
        self.health.remote_failures.with_label_values(&[target, reason.as_str()]).inc();
    }

    /// Drops the health and breaker series a target's new settings no longer produce.
    pub fn retain_watched(
        &self,
        target: &str,
        health: &[crate::health::HealthCheck],
        remote_breakers: Option<&crate::health::RemoteBreakers>,
    ) {
        let checks: Vec<&str> = health.iter().map(|c| c.name.as_str()).collect();
        let breakers: Vec<&str> =
            remote_breakers.iter().flat_map(|r| r.paths.iter().map(|(n, _)| n.as_str())).collect();
        let reports_version = health.iter().any(|c| c.version_path.is_some());
        self.health.retain(target, &checks, &breakers, reports_version);
    }
}
