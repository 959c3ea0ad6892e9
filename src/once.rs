//! `wsprobe once`: every selected target probed now, results printed, exit 0 or 1.
//!
//! The same `Prober` the daemon runs, so a post-deploy gate in CI checks exactly what the
//! monitor checks.

use std::fmt::Write as _;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{Deployment, HealthResult};
use crate::probe::{missing_result, ProbeResult};
use crate::target::Prepared;
use crate::util::text::escape_control;

/// Probes each target once, concurrently up to the configured limit; results in
/// configuration order, one per target unless `cancel` fired. A target whose probe ended
/// without a result (its task failed) gets a failed `internal_error` result: a gate never
/// passes on a target it did not check.
pub async fn probe_all(
    probers: Vec<Prepared>,
    config: &Config,
    cancel: &CancellationToken,
) -> Vec<ProbeResult> {
    let limit = crate::slots::pool(config.max_concurrent_probes);
    let tasks: Vec<_> = probers
        .into_iter()
        .map(|p| {
            let limit = limit.clone();
            let cancel = cancel.clone();
            let name = p.name().to_owned();
            (
                name,
                tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await.ok()?;
                    p.prober.probe(&cancel).await
                }),
            )
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (name, task) in tasks {
        match task.await {
            Ok(Some(r)) => results.push(r),
            Ok(None) if cancel.is_cancelled() => {}
            Ok(None) => results.push(missing_result(&name, "the probe ended without a result")),
            Err(e) => results.push(missing_result(&name, &format!("the probe's task failed: {e}"))),
        }
    }
    results
}

#[derive(Serialize)]
struct JsonReport<'a> {
    results: Vec<WithHealth<'a>>,
}

/// The public JSON report (README); a target with health checks also gets `health` and `deployment`.
pub fn render_json(results: &[ProbeResult], health: &[TargetHealth]) -> String {
    let results = results
        .iter()
        .map(|result| {
            let h = health_of(health, &result.target);
            WithHealth {
                result,
                health: h.map(|h| h.results.as_slice()),
                deployment: h.and_then(|h| h.deployment.as_ref()),
            }
        })
        .collect();
    serde_json::to_string_pretty(&JsonReport { results })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// One block per target: verdict, reason and where it failed, then the phase timings,
/// then its health checks and any deployment drift.
pub fn render_text(results: &[ProbeResult], health: &[TargetHealth]) -> String {
    let width = results.iter().map(|r| r.target.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let verdict = if r.success { "ok  " } else { "FAIL" };
        let _ = write!(out, "{:width$}  {verdict}  {:>8}", r.target, fmt_secs(r.duration_seconds));
        if !r.success {
            let reason = r.reason.map_or("?", |x| x.as_str());
            let phase = r.phase.map_or("?", |x| x.as_str());
            let _ = write!(out, "  {reason} in {phase}");
            if let Some(step) = &r.step {
                let _ = write!(out, " `{step}`");
            }
            if let Some(status) = r.http_status.filter(|s| *s != 101) {
                let _ = write!(out, " (HTTP {status})");
            }
            if let Some(code) = r.close_code {
                let _ = write!(out, " (close code {code})");
            }
            if let Some(msg) = &r.message {
                let _ = write!(out, ": {}", escape_control(msg));
            }
        }
        out.push('\n');
        let phases: Vec<String> =
            r.phases.iter().map(|(p, s)| format!("{} {}", p.as_str(), fmt_secs(s))).collect();
        if !phases.is_empty() {
            let _ = writeln!(out, "{:width$}  {}", "", phases.join("  "));
        }
        if let Some(h) = health_of(health, &r.target) {
            render_health(&mut out, width, h);
        }
    }
    let failed = results.iter().filter(|r| !r.success).count();
    let _ = writeln!(out, "{} of {} targets ok", results.len() - failed, results.len());
    let checks: Vec<&HealthResult> = health.iter().flat_map(|h| &h.results).collect();
    if !checks.is_empty() {
        let ok = checks.iter().filter(|r| r.success).count();
        let _ = writeln!(out, "{ok} of {} health checks ok", checks.len());
    }
    out
}

fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1}ms", s * 1000.0)
    } else {
        format!("{s:.2}s")
    }
}

/// The health checks of one target, run once, and what they say about its deployment.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    #[serde(skip)]
    pub target: String,
    pub results: Vec<HealthResult>,
    pub deployment: Option<Deployment>,
    #[serde(skip)]
    pub fail_on_drift: bool,
}

impl TargetHealth {
    /// Whether this target passes as a post-deploy gate: every check succeeded and, with
    /// `fail_on_drift`, the live version is the expected one.
    pub fn ok(&self) -> bool {
        self.results.iter().all(|r| r.success) && !(self.fail_on_drift && self.drift_unresolved())
    }

    /// Drift, or no way to tell (no version read, no expectation read).
    fn drift_unresolved(&self) -> bool {
        self.deployment.as_ref().is_none_or(|d| d.drift != Some(false))
    }
}

/// Runs every health check of every target once, concurrently; targets in the given
/// order, checks in configuration order. Targets without checks are left out.
pub async fn check_all(probers: &[Prepared]) -> Vec<TargetHealth> {
    let tasks: Vec<_> = probers
        .iter()
        .filter(|p| !p.watchers.checks.is_empty())
        .map(|p| {
            let (name, fail_on_drift) = (p.name().to_owned(), p.target.fail_on_drift);
            let checks: Vec<_> = p
                .watchers
                .checks
                .iter()
                .map(|c| {
                    let (c, name) = (c.clone(), name.clone());
                    tokio::spawn(async move { c.run(&name).await })
                })
                .collect();
            (name, fail_on_drift, checks)
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (target, fail_on_drift, checks) in tasks {
        let mut results = Vec::with_capacity(checks.len());
        for task in checks {
            if let Ok(r) = task.await {
                results.push(r);
            }
        }
        let deployment = results.iter().find(|r| r.reports_version).map(|r| {
            let mut drift = crate::health::Drift::default();
            drift.observe(r.version.as_deref(), r.expected_version.as_deref(), std::time::SystemTime::now());
            Deployment::of(&r.check, &drift)
        });
        out.push(TargetHealth { target, results, deployment, fail_on_drift });
    }
    out
}

/// A probe result with its target's health checks, for the JSON report.
#[derive(Serialize)]
struct WithHealth<'a> {
    #[serde(flatten)]
    result: &'a ProbeResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a [HealthResult]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment: Option<&'a Deployment>,
}

fn health_of<'a>(health: &'a [TargetHealth], target: &str) -> Option<&'a TargetHealth> {
    health.iter().find(|h| h.target == target)
}

/// The text lines of one target's health checks and drift.
fn render_health(out: &mut String, width: usize, h: &TargetHealth) {
    for r in &h.results {
        let verdict = if r.success { "ok  " } else { "FAIL" };
        let _ = write!(
            out,
            "{:width$}  health `{}`  {verdict}  {:>8}",
            "",
            r.check,
            fmt_secs(r.duration_seconds)
        );
        if let Some(status) = r.http_status {
            let _ = write!(out, "  HTTP {status}");
        }
        if let Some(v) = &r.version {
            let _ = write!(out, "  version {}", escape_control(v));
        }
        if let (Some(reason), Some(message)) = (r.reason, &r.message) {
            let _ = write!(out, "  {reason}: {}", escape_control(message));
        }
        out.push('\n');
    }
    let Some(d) = &h.deployment else { return };
    if let Some(sentence) = d.sentence(&h.target) {
        let _ = writeln!(out, "{:width$}  drift: {}", "", escape_control(&sentence));
    } else if let Some(e) = h.results.iter().find_map(|r| r.expected_version_error.as_ref()) {
        let _ = writeln!(
            out,
            "{:width$}  drift unknown: cannot read the expected version: {}",
            "",
            escape_control(e)
        );
    }
}
