//! The engine's input queue: measurements bounded, state changes never lost.
//!
//! Probe results and session events are measurements. Past [`Queue::DATA`] of them
//! waiting, a new one is dropped: counted in `wsprobe_alert_inputs_dropped_total`, logged
//! once when dropping starts and once with the count when the engine has caught up, so a
//! burst costs two log lines, not one per input. Conditions (circuit open, deployment
//! drift) and a reload's target list are state changes: one lost would leave an alert
//! firing or silent for good, and a breaker or a reload makes few of them, so they always
//! join the queue. Everything shares one queue, so the engine sees it all in the order it
//! was sent (a removed target's last results come before its removal).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntCounter;
use tokio::sync::mpsc;

/// The sending side; cheap to clone, never waits.
#[derive(Debug)]
pub(super) struct Sender<T> {
    tx: mpsc::UnboundedSender<(T, bool)>,
    shared: Arc<Shared>,
}

// By hand: a derive would ask for `T: Clone`, and inputs are moved, never cloned.
impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), shared: self.shared.clone() }
    }
}

/// The engine's side.
#[derive(Debug)]
pub(super) struct Receiver<T> {
    rx: mpsc::UnboundedReceiver<(T, bool)>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Measurements sent and not yet received.
    waiting: AtomicUsize,
    capacity: usize,
    /// Dropped since the engine last caught up.
    dropped: AtomicU64,
    dropping: AtomicBool,
    dropped_total: IntCounter,
}

pub(super) struct Queue;

impl Queue {
    /// Measurements that may wait: a mass cut of 10,000 held sessions sends about three
    /// each (the disconnect, the open count, the reconnect's result). Nothing is allocated
    /// for room not used; a full queue of results is a few tens of MB.
    pub(super) const DATA: usize = 65_536;

    /// A queue holding at most `capacity` measurements; drops count in `dropped_total`.
    pub(super) fn with_capacity<T>(capacity: usize, dropped_total: IntCounter) -> (Sender<T>, Receiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            waiting: AtomicUsize::new(0),
            capacity,
            dropped: AtomicU64::new(0),
            dropping: AtomicBool::new(false),
            dropped_total,
        });
        (Sender { tx, shared: shared.clone() }, Receiver { rx, shared })
    }
}

impl<T> Sender<T> {
    /// Queues a measurement unless `capacity` are waiting; false when it was dropped.
    pub(super) fn measurement(&self, input: T) -> bool {
        let s = &self.shared;
        let queued = s
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < s.capacity).then_some(n + 1))
            .is_ok();
        if queued && self.tx.send((input, true)).is_ok() {
            return true;
        }
        if queued {
            // The engine is gone (shutdown): nothing to evaluate, nothing to report.
            s.waiting.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        s.dropped_total.inc();
        s.dropped.fetch_add(1, Ordering::AcqRel);
        if !s.dropping.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                capacity = s.capacity,
                "The alert engine is behind: probe results and session events are dropped \
                 unevaluated until it catches up (wsprobe_alert_inputs_dropped_total)."
            );
        }
        false
    }

    /// Queues a state change, whatever is waiting.
    pub(super) fn state_change(&self, input: T) {
        // An error means the engine is gone (shutdown).
        let _ = self.tx.send((input, false));
    }
}

impl<T> Receiver<T> {
    /// The next input; `None` once every sender is gone.
    pub(super) async fn recv(&mut self) -> Option<T> {
        let (input, measurement) = self.rx.recv().await?;
        if measurement {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        if self.rx.is_empty() {
            self.caught_up();
        }
        Some(input)
    }

    /// With nothing waiting: says how many were dropped, if any were.
    fn caught_up(&self) {
        let s = &self.shared;
        if s.dropping.load(Ordering::Acquire) {
            // Cleared first: a drop from here on starts a new episode and is counted there
            // or, if it lands before the swap, here.
            s.dropping.store(false, Ordering::Release);
            let dropped = s.dropped.swap(0, Ordering::AcqRel);
            tracing::warn!(dropped, "The alert engine caught up; {dropped} probe results and session events were dropped unevaluated.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> (Sender<u32>, Receiver<u32>, IntCounter) {
        let dropped = IntCounter::new("dropped", "dropped").unwrap();
        let (tx, rx) = Queue::with_capacity(capacity, dropped.clone());
        (tx, rx, dropped)
    }

    #[tokio::test]
    async fn measurements_past_the_capacity_are_dropped_and_counted_state_changes_never() {
        let (tx, mut rx, dropped) = queue(2);
        assert!(tx.measurement(1));
        assert!(tx.measurement(2));
        assert!(!tx.measurement(3), "the third measurement does not fit");
        tx.state_change(100);
        tx.state_change(101);
        assert!(!tx.measurement(4));
        assert_eq!(dropped.get(), 2);
        // In the order sent, the state changes included.
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(rx.recv().await.unwrap());
        }
        assert_eq!(got, [1, 2, 100, 101]);
        // Received measurements make room again.
        assert!(tx.measurement(5) && tx.measurement(6));
        assert!(!tx.measurement(7));
        assert_eq!(dropped.get(), 3);
    }

    #[tokio::test]
    async fn the_drop_count_restarts_once_the_engine_has_caught_up() {
        let (tx, mut rx, _) = queue(1);
        assert!(tx.measurement(1));
        assert!(!tx.measurement(2));
        assert!(!tx.measurement(3));
        assert_eq!(rx.shared.dropped.load(Ordering::Acquire), 2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.shared.dropped.load(Ordering::Acquire), 0, "reported and reset");
        assert!(!rx.shared.dropping.load(Ordering::Acquire));
        assert!(tx.measurement(4));
    }

    #[tokio::test]
    async fn a_closed_engine_neither_queues_nor_counts() {
        let (tx, rx, dropped) = queue(1);
        drop(rx);
        assert!(!tx.measurement(1));
        assert!(!tx.measurement(2));
        assert_eq!(dropped.get(), 0);
        tx.state_change(3);
    }
}
