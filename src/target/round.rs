//! One round of a target, now: its probe and each of its health checks run once, side by
//! side, and the deployment the version-reading check shows. What `wsprobe once` runs per
//! target; the drift comes from [`Drift::read`], the same fold the check loop uses.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Prepared;
use crate::health::{Deployment, Drift, HealthResult};
use crate::probe::{missing_result, ProbeResult};

/// What one round of a target produced.
#[derive(Debug)]
pub(crate) struct Round {
    /// `None` only when `cancel` fired: a probe that ended without a result otherwise gets
    /// a failed `internal_error` one, so no target passes unchecked.
    pub(crate) probe: Option<ProbeResult>,
    /// The health checks' results, in configuration order.
    pub(crate) health: Vec<HealthResult>,
    /// The deployed version as the first check that reads one saw it.
    pub(crate) deployment: Option<Deployment>,
}

/// Runs the probe (once a slot of `limit` is free) and every health check (without a
/// slot: one short GET each) at the same time. Each check runs in its own task, so a
/// check that fails to finish costs its result, not the round.
pub(crate) async fn round(prepared: &Prepared, limit: &Arc<Semaphore>, cancel: &CancellationToken) -> Round {
    let name = prepared.name();
    let checks: Vec<_> = prepared
        .watchers
        .checks
        .iter()
        .map(|c| {
            let (c, name) = (c.clone(), name.to_owned());
            tokio::spawn(async move { c.run(&name).await })
        })
        .collect();
    let probe = async {
        let _permit = limit.clone().acquire_owned().await.ok()?;
        if prepared.target.session.is_some() {
            return super::sessions::once(prepared, cancel).await;
        }
        prepared.prober.probe(cancel).await
    };
    let health = async {
        let mut results = Vec::with_capacity(checks.len());
        for task in checks {
            if let Ok(r) = task.await {
                results.push(r);
            }
        }
        results
    };
    let (probe, health) = tokio::join!(probe, health);
    let probe = match probe {
        None if !cancel.is_cancelled() => Some(missing_result(name, "the probe ended without a result")),
        probe => probe,
    };
    // A round starts from no history: the drift is what this one reading says.
    let now = SystemTime::now();
    let deployment = health.iter().find_map(|r| Drift::default().read(r, now)).map(|(_, d)| d);
    Round { probe, health, deployment }
}
