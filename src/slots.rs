//! Probe slots: the optional global cap on probes running at once (`max_concurrent_probes`).
//!
//! Each target runs one probe at a time, so without a cap concurrency is bounded by the
//! number of targets and a hanging target can never delay a healthy one. With a cap, a
//! probe that finds every slot taken waits for one, and that wait is never quiet: it is
//! counted per target (`wsprobe_probes_delayed_total`), counted globally
//! (`wsprobe_probe_slots_exhausted_total`, which `/readyz` quotes), and logged as a WARN
//! with how long the probe waited.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use prometheus::IntCounter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Error, Registry, TargetCounter};

/// The semaphore for a configured cap; without one, a semaphore that never runs out.
pub fn pool(cap: Option<NonZeroUsize>) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(cap.map_or(Semaphore::MAX_PERMITS, NonZeroUsize::get)))
}

/// Counters for probes that had to wait for a slot.
#[derive(Debug, Clone)]
pub struct SlotMetrics {
    /// Per target: probes that started late because every slot was busy.
    pub delayed: TargetCounter,
    /// Every time a probe found all slots busy, across targets.
    pub exhausted: IntCounter,
}

impl SlotMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            delayed: registry.target_counter(
                "wsprobe_probes_delayed_total",
                "Probes that started late because every max_concurrent_probes slot was busy.",
                &["target"],
            )?,
            exhausted: registry.counter(
                "wsprobe_probe_slots_exhausted_total",
                "Times a due probe found every max_concurrent_probes slot busy.",
            )?,
        })
    }
}

/// Takes a slot for one probe of `target`, waiting (loudly) when none is free. `None`
/// when `cancel` fires first or the pool is closed.
pub(crate) async fn acquire(
    limit: &Arc<Semaphore>,
    target: &str,
    metrics: &SlotMetrics,
    cancel: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    match limit.clone().try_acquire_owned() {
        Ok(permit) => return Some(permit),
        Err(TryAcquireError::Closed) => return None,
        Err(TryAcquireError::NoPermits) => {}
    }
    metrics.exhausted.inc();
    metrics.delayed.with_label_values(&[target]).inc();
    let waited = Instant::now();
    let permit = tokio::select! {
        biased;
        () = cancel.cancelled() => return None,
        p = limit.clone().acquire_owned() => p.ok()?,
    };
    tracing::warn!(
        target_name = target,
        waited_seconds = waited.elapsed().as_secs_f64(),
        "Every max_concurrent_probes slot was busy; this probe started late. Raise or remove the cap."
    );
    Some(permit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_is_counted_and_waited_for() {
        let registry = Registry::new().unwrap_or_else(|e| panic!("{e}"));
        let metrics = SlotMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
        let limit = pool(NonZeroUsize::new(1));
        let cancel = CancellationToken::new();
        let held = acquire(&limit, "a", &metrics, &cancel).await;
        assert!(held.is_some());
        assert_eq!(metrics.exhausted.get(), 0);
        let waiter = {
            let (limit, metrics, cancel) = (limit.clone(), metrics.clone(), cancel.clone());
            tokio::spawn(async move { acquire(&limit, "b", &metrics, &cancel).await.is_some() })
        };
        while metrics.exhausted.get() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(waiter.await.unwrap_or(false));
        assert_eq!(metrics.exhausted.get(), 1);
        assert_eq!(metrics.delayed.with_label_values(&["b"]).get(), 1);
    }

    #[test]
    fn no_cap_means_no_wait() {
        assert_eq!(pool(None).available_permits(), Semaphore::MAX_PERMITS);
    }
}
