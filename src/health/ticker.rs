//! The cadence of the health checks and the remote-breaker poll: run now, then every
//! interval, each run cancellable, an overrun not made up for.
//!
//! One helper so both loops keep the same rules: the first run is at once, the next is
//! an interval after the last one was due, and after an overrun (a check slower than its
//! interval, a stalled process) the next is an interval after now, never a burst of
//! catch-up runs. The arithmetic saturates ([`deadline`]), so no interval can overflow.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::util::time::deadline;

/// Wakes a loop on its interval; see the module docs for the rules.
#[derive(Debug)]
pub(crate) struct Ticker {
    interval: Duration,
    next: Instant,
    /// Whether a run was due already, so the next call first moves `next` on.
    started: bool,
}

impl Ticker {
    /// A ticker whose first run is due now.
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, next: Instant::now(), started: false }
    }

    /// Waits for the next run, then runs `work`, both under `cancel`: `None` as soon as
    /// `cancel` fires. The next run is scheduled when this is called again, so what the
    /// caller does with the answer counts toward the interval, not on top of it.
    pub(crate) async fn tick<T>(
        &mut self,
        cancel: &CancellationToken,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        if self.started {
            let now = Instant::now();
            self.next = deadline(self.next, self.interval);
            if self.next <= now {
                self.next = deadline(now, self.interval);
            }
        }
        self.started = true;
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep_until(self.next) => {}
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = work => Some(r),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(40);

    #[tokio::test]
    async fn runs_at_once_then_on_the_interval_and_does_not_make_up_an_overrun() {
        let cancel = CancellationToken::new();
        let mut ticker = Ticker::new(STEP);
        let start = Instant::now();
        let first = ticker.tick(&cancel, async { Instant::now() }).await.unwrap();
        assert!(first - start < STEP / 2, "the first run waits for nothing: {:?}", first - start);
        let second = ticker.tick(&cancel, async { Instant::now() }).await.unwrap();
        assert!(second - start >= STEP, "the second run is an interval later: {:?}", second - start);
        // An overrun of two and a half intervals: the next run is one interval after it,
        // not three runs back to back.
        tokio::time::sleep(STEP * 5 / 2).await;
        let overrun_end = Instant::now();
        let third = ticker.tick(&cancel, async { Instant::now() }).await.unwrap();
        assert!(third - overrun_end >= STEP, "an overrun is not made up: {:?}", third - overrun_end);
    }

    #[tokio::test]
    async fn cancel_stops_the_wait_and_the_work() {
        let cancel = CancellationToken::new();
        let mut ticker = Ticker::new(Duration::MAX);
        assert_eq!(ticker.tick(&cancel, async { 1 }).await, Some(1));
        // The next run would be ~30 years away (saturated, no overflow); cancel ends it now.
        cancel.cancel();
        assert_eq!(ticker.tick(&cancel, async { 2 }).await, None);
        let mut fresh = Ticker::new(STEP);
        assert_eq!(fresh.tick(&cancel, std::future::pending::<()>()).await, None);
    }
}
