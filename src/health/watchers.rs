//! Running a target's health checks and remote-breaker poll on their intervals, and
//! reporting every reading (drift bookkeeping included) through [`Report`].

use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::drift::Changes;
use super::ticker::Ticker;
use super::{remote, Checker, Drift, HealthCheck, HealthResult, Poller, RemoteBreakers, Report};
use crate::util::time::PhaseText;

/// Everything watched beside one target's probes, made ready once (TLS configurations
/// built, so a bad CA file fails before anything starts).
#[derive(Debug, Default)]
pub struct Watchers {
    pub checks: Vec<Arc<Checker>>,
    pub remote: Option<Arc<Poller>>,
}

impl Watchers {
    pub fn new(health: &[HealthCheck], remote_breakers: Option<&RemoteBreakers>) -> Result<Self, String> {
        let checks = health
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Checker::new(c.clone()).map(Arc::new).map_err(|e| format!("health[{i}] (`{}`): {e}", c.name))
            })
            .collect::<Result<_, _>>()?;
        let remote = match remote_breakers {
            Some(r) => Some(Arc::new(Poller::new(r.clone()).map_err(|e| format!("remote_breakers: {e}"))?)),
            None => None,
        };
        Ok(Self { checks, remote })
    }

    /// Starts one task per health check and one for the remote breakers; they stop when
    /// `cancel` fires.
    pub fn spawn<R: Report>(&self, target: &str, report: &R, cancel: &CancellationToken) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for checker in &self.checks {
            let span = tracing::info_span!("health", check = %checker.check.name);
            let run = check_loop(checker.clone(), target.to_owned(), report.clone(), cancel.clone());
            tasks.spawn(run.instrument(span));
        }
        if let Some(poller) = &self.remote {
            let span = tracing::info_span!("remote_breakers");
            let run = remote::poll_loop(poller.clone(), target.to_owned(), report.clone(), cancel.clone());
            tasks.spawn(run.instrument(span));
        }
        tasks
    }
}

/// Runs one health check every `interval` until `cancel` fires.
async fn check_loop<R: Report>(checker: Arc<Checker>, target: String, report: R, cancel: CancellationToken) {
    let mut ticker = Ticker::new(checker.check.interval);
    let mut drift = Drift::default();
    let mut expected_error: Option<String> = None;
    let mut last_succeeded = false;
    while let Some(result) = ticker.tick(&cancel, checker.run(&target)).await {
        log_health(&result, last_succeeded && result.success);
        last_succeeded = result.success;
        report.observed(&result);
        let now = SystemTime::now();
        let deployment = drift.read(&result, now).map(|(changes, deployment)| {
            track_drift(&result, &changes, &drift, &mut expected_error, &report, now);
            deployment
        });
        report.checked(&target, result, deployment).await;
    }
}

/// What one reading did to the drift state, told: logs and the deployment metrics.
fn track_drift(
    r: &HealthResult,
    changes: &Changes,
    drift: &Drift,
    expected_error: &mut Option<String>,
    report: &impl Report,
    now: SystemTime,
) {
    if r.expected_version_error != *expected_error {
        if let Some(e) = &r.expected_version_error {
            tracing::warn!(target_name = %r.target, check = %r.check, error = %e, "Cannot read the expected version; drift is unknown until it can be read.");
        }
        expected_error.clone_from(&r.expected_version_error);
    }
    if let Some((previous, live)) = &changes.version {
        tracing::info!(
            target_name = %r.target,
            check = %r.check,
            previous = previous.as_deref().unwrap_or(""),
            version = %live,
            "The live version changed."
        );
    }
    let expected = drift.expected().unwrap_or("");
    let live = drift.live().unwrap_or("");
    if changes.drift_started {
        tracing::warn!(target_name = %r.target, check = %r.check, expected, live, "Deployment drift: deployed {expected}, {} still serves {live}.", r.target);
    }
    if changes.drift_ended {
        tracing::info!(target_name = %r.target, check = %r.check, expected, live, "Deployment drift ended.");
    }
    // The detector's DeploymentDrift alert follows the same condition.
    if changes.drift_started || changes.drift_ended {
        let detail = if changes.drift_started {
            format!("deployed {expected}, {} still serves {live}", r.target)
        } else if expected.is_empty() {
            // The expectation could not be read: drift is unknown rather than over.
            format!("the expected version for {} cannot be read, so drift is unknown", r.target)
        } else {
            format!("{} serves the deployed build, {live}", r.target)
        };
        report.drift_condition(&r.target, changes.drift_started, detail);
    }
    let gauge = drift.drifting().map(|d| (d, drift.seconds(now)));
    report.deployment(&r.target, drift.live(), gauge);
}

/// One log line per health check, with the fields of the failure metric. As for probes, a
/// failure is a warning, a success news (`info`) when it is the check's first or ends a
/// run of failures, and `routine` (`debug`) after a success.
pub fn log_health(r: &HealthResult, routine: bool) {
    let phases = PhaseText(|| r.phases.iter());
    // A macro, as an event's level must be a constant.
    macro_rules! succeeded {
        ($level:expr) => {
            tracing::event!($level, target_name = %r.target, check = %r.check, http_status = r.http_status.unwrap_or(0), phases = %phases, "Health check succeeded.")
        };
    }
    if r.success && routine {
        succeeded!(tracing::Level::DEBUG);
    } else if r.success {
        succeeded!(tracing::Level::INFO);
    } else {
        tracing::warn!(
            target_name = %r.target,
            check = %r.check,
            reason = r.reason.map_or("", |x| x.as_str()),
            http_status = r.http_status.unwrap_or(0),
            phases = %phases,
            detail = r.message.as_deref().unwrap_or(""),
            "Health check failed."
        );
    }
}
