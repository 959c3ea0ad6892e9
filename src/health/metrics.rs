//! Metrics of health checks, deployment drift and remote circuit breakers, per target.
//!
//! Every series is tracked, so a target's removal takes them all, and [`retain`] drops
//! those of checks and breakers a target no longer has.
//!
//! [`retain`]: HealthMetrics::retain

use crate::metrics::{Error, Registry, TargetCounter, TargetGauge, TargetHistogram, TargetIntGauge, Tracker};

use super::{version_label, HealthReason, HealthResult, RemoteState};

const DEPLOYMENT_INFO: &str = "wsprobe_deployment_info";
const DEPLOYMENT_DRIFT: &str = "wsprobe_deployment_drift";
const DEPLOYMENT_DRIFT_SECONDS: &str = "wsprobe_deployment_drift_seconds";
const REMOTE_FAILURES: &str = "wsprobe_remote_breaker_poll_failures_total";

#[derive(Debug, Clone)]
pub struct HealthMetrics {
    pub duration: TargetHistogram,
    pub success: TargetGauge,
    pub failures: TargetCounter,
    pub http_status: TargetIntGauge,
    /// `{target,version}`: one series per target, the live version.
    pub deployment_info: TargetIntGauge,
    pub deployment_drift: TargetIntGauge,
    pub deployment_drift_seconds: TargetGauge,
    pub remote_state: TargetIntGauge,
    pub remote_failures: TargetCounter,
    tracker: Tracker,
}

impl HealthMetrics {
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            duration: registry.target_histogram(
                "wsprobe_health_duration_seconds",
                "Duration of health check phases (dns, connect, tls, first_byte, total), summed over redirects.",
                &["target", "check", "phase"],
            )?,
            success: registry.target_gauge(
                "wsprobe_health_success",
                "Whether the last run of the health check succeeded (1) or failed (0).",
                &["target", "check"],
            )?,
            failures: registry.target_counter(
                "wsprobe_health_failures_total",
                "Failed health checks by reason.",
                &["target", "check", "reason"],
            )?,
            http_status: registry.target_int_gauge(
                "wsprobe_health_http_status",
                "HTTP status of the health check's last answer, after redirects (0 when none came).",
                &["target", "check"],
            )?,
            deployment_info: registry.target_int_gauge(
                DEPLOYMENT_INFO,
                "Always 1; `version` is the live version the target reports (sanitized, at most 64 characters).",
                &["target", "version"],
            )?,
            deployment_drift: registry.target_int_gauge(
                DEPLOYMENT_DRIFT,
                "1 when the live version differs from the expected one, 0 when it matches (absent when either is unknown).",
                &["target"],
            )?,
            deployment_drift_seconds: registry.target_gauge(
                DEPLOYMENT_DRIFT_SECONDS,
                "Seconds since the live version stopped matching the expected one, as of the last check (0 without drift).",
                &["target"],
            )?,
            remote_state: registry.target_int_gauge(
                "wsprobe_remote_circuit_state",
                "The service's own circuit breakers: 1 on the current state (closed, open, half_open, unknown).",
                &["target", "breaker", "state"],
            )?,
            remote_failures: registry.target_counter(
                REMOTE_FAILURES,
                "Failed reads of the remote circuit breakers, by reason.",
                &["target", "reason"],
            )?,
            tracker: registry.tracker().clone(),
        })
    }

    /// Records one health check result.
    pub fn observe(&self, r: &HealthResult) {
        let labels = [r.target.as_str(), r.check.as_str()];
        self.http_status.with_label_values(&labels).set(r.http_status.map_or(0, i64::from));
        for (phase, secs) in r.phases.iter() {
            self.duration.with_label_values(&[labels[0], labels[1], phase]).observe(secs);
        }
        if let Some(reason) = r.reason {
            self.failures.with_label_values(&[labels[0], labels[1], reason.as_str()]).inc();
        }
        // Last, so a scrape that sees the verdict also sees what came with it.
        self.success.with_label_values(&labels).set(if r.success { 1.0 } else { 0.0 });
    }

    /// Sets the live version (the only `wsprobe_deployment_info` series of the target:
    /// any other version's series is removed) and the drift gauges (`None`: unknown,
    /// removed).
    pub fn set_deployment(&self, target: &str, live: Option<&str>, drift: Option<(bool, f64)>) {
        if let Some(live) = live {
            let label = version_label(live);
            self.tracker.forget_where(target, |s| {
                s.metric() == DEPLOYMENT_INFO && s.label("version") != Some(label.as_str())
            });
            self.deployment_info.with_label_values(&[target, &label]).set(1);
        }
        match drift {
            Some((drifting, seconds)) => {
                self.deployment_drift_seconds.with_label_values(&[target]).set(seconds);
                self.deployment_drift.with_label_values(&[target]).set(i64::from(drifting));
            }
            None => {
                self.deployment_drift.remove_label_values(&[target]);
                self.deployment_drift_seconds.remove_label_values(&[target]);
            }
        }
    }

    /// Sets a remote breaker's one-hot state.
    pub fn set_remote_breaker(&self, target: &str, breaker: &str, state: RemoteState) {
        for s in RemoteState::ALL {
            self.remote_state.with_label_values(&[target, breaker, s.as_str()]).set(i64::from(s == state));
        }
    }

    pub fn remote_poll_failed(&self, target: &str, reason: HealthReason) {
        self.remote_failures.with_label_values(&[target, reason.as_str()]).inc();
    }

    /// Removes a target's health series except those of the checks and breakers it still
    /// has (all of them, given empty lists), and its deployment series unless it still
    /// reports a version.
    pub fn retain(&self, target: &str, checks: &[&str], breakers: &[&str], reports_version: bool) {
        self.tracker.forget_where(target, |s| {
            if let Some(check) = s.label("check") {
                return !checks.contains(&check);
            }
            if let Some(breaker) = s.label("breaker") {
                return !breakers.contains(&breaker);
            }
            match s.metric() {
                REMOTE_FAILURES => breakers.is_empty(),
                DEPLOYMENT_INFO | DEPLOYMENT_DRIFT | DEPLOYMENT_DRIFT_SECONDS => !reports_version,
                _ => false,
            }
        });
    }
}
