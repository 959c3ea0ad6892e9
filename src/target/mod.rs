//! The target task: one target's probes on their schedule, its circuit breaker, and the
//! health checks and remote-breaker poll started beside them; and one round of it, now
//! (`round`), for `wsprobe once`. A `session:` target runs `sessions` instead: its held
//! sessions, each reconnecting on its own, with the same sink and breaker.
//!
//! Above the features and the configuration: it joins a `config::Target` to the probe,
//! breaker and health pieces that know nothing of each other, and routes what they report
//! to the log, the metrics, the state snapshot, the record file and the alert engine.

mod lateness;
pub mod metrics;
mod round;
pub mod scheduler;
pub(crate) mod sessions;
mod watch;

use std::sync::Arc;

use crate::config::Target;
use crate::health::Watchers;
use crate::probe::Prober;

pub(crate) use round::{round, Round};

/// A target made ready to run: its prober and its watchers built once (TLS
/// configurations loaded, so a bad CA file fails before anything starts).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub target: Arc<Target>,
    pub prober: Prober,
    /// Health checks and the remote-breaker poll, run beside the probes.
    pub watchers: Arc<Watchers>,
}

impl Prepared {
    /// Prepares a target; fails if its TLS settings (or those of its health checks)
    /// cannot be loaded.
    pub fn new(target: Target) -> Result<Self, String> {
        let prober = Prober::new(target.probe_spec())?;
        let watchers = Arc::new(Watchers::new(&target.health, target.remote_breakers.as_ref())?);
        Ok(Self { target: Arc::new(target), prober, watchers })
    }

    pub fn name(&self) -> &str {
        &self.target.name
    }
}
