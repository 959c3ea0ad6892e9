//! `wsprobe once`: every selected target probed now, results printed, exit 0 or 1.
//!
//! One round of each selected target through the target layer ([`round`]: the same
//! `Prober`, health checks and drift fold the daemon runs), so a post-deploy gate in CI
//! checks exactly what the monitor checks. This file runs the rounds side by side, keeps
//! configuration order, renders the report and says whether the gate passes.

use std::fmt::Write as _;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{Deployment, HealthResult};
use crate::probe::{missing_result, ProbeResult};
use crate::target::{round, Prepared, Round};
use crate::util::text::escape_control;

/// Runs one round of each target ([`round`]), the rounds concurrent, probes taking one of
/// the `max_concurrent_probes` slots. Probe results in configuration order, one per target
/// unless `cancel` fired; a round whose task failed gets a failed `internal_error` result,
/// so a gate never passes on a target it did not check. Health in the same order, targets
/// without checks left out.
pub async fn run(
    prepared: Vec<Prepared>,
    config: &Config,
    cancel: &CancellationToken,
) -> (Vec<ProbeResult>, Vec<TargetHealth>) {
    let limit = crate::slots::pool(config.max_concurrent_probes);
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|p| {
            let (limit, cancel) = (limit.clone(), cancel.clone());
            let name = p.name().to_owned();
            let checked = (!p.watchers.checks.is_empty()).then_some(p.target.fail_on_drift);
            (name, checked, tokio::spawn(async move { round(&p, &limit, &cancel).await }))
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    let mut health = Vec::new();
    for (name, checked, task) in tasks {
        let Round { probe, health: checks, deployment } = match task.await {
            Ok(r) => r,
            Err(e) => {
                results.push(missing_result(&name, &format!("the probe's task failed: {e}")));
                continue;
            }
        };
        results.extend(probe);
        if let Some(fail_on_drift) = checked {
            health.push(TargetHealth { target: name, results: checks, deployment, fail_on_drift });
        }
    }
    (results, health)
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
