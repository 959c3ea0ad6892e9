//! `wsprobe once`: every selected target probed now, results printed, exit 0 or 1.
//!
//! The same `Prober` the daemon runs, so a post-deploy gate in CI checks exactly what the
//! monitor checks.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::probe::{ProbeResult, Prober};

/// Probes each target once, concurrently up to the configured limit; results in
/// configuration order. `None` for a target whose probe was cancelled.
pub async fn probe_all(
    probers: Vec<Prober>,
    config: &Config,
    cancel: &CancellationToken,
) -> Vec<ProbeResult> {
    let limit = Arc::new(Semaphore::new(config.max_concurrent_probes.get()));
    let tasks: Vec<_> = probers
        .into_iter()
        .map(|p| {
            let limit = limit.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.ok()?;
                p.probe(&cancel).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Some(r)) = task.await {
            results.push(r);
        }
    }
    results
}

#[derive(Serialize)]
struct JsonReport<'a> {
    results: &'a [ProbeResult],
}

pub fn render_json(results: &[ProbeResult]) -> String {
    serde_json::to_string_pretty(&JsonReport { results })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// One block per target: verdict, reason and where it failed, then the phase timings.
pub fn render_text(results: &[ProbeResult]) -> String {
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
                let _ = write!(out, ": {msg}");
            }
        }
        out.push('\n');
        let phases: Vec<String> =
            r.phases.iter().map(|(p, s)| format!("{} {}", p.as_str(), fmt_secs(s))).collect();
        if !phases.is_empty() {
            let _ = writeln!(out, "{:width$}  {}", "", phases.join("  "));
        }
    }
    let failed = results.iter().filter(|r| !r.success).count();
    let _ = writeln!(out, "{} of {} targets ok", results.len() - failed, results.len());
    out
}

fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1}ms", s * 1000.0)
    } else {
        format!("{s:.2}s")
    }
}
