//! What `/flaky` does on each connection: a fixed cycle, counted per connection, so the
//! sequence of outcomes is the same whatever the probe interval.
//!
//! The cycle is built to walk every state the daemon can show: a healthy stretch, a slow
//! but passing upgrade, then four failures in a row (a stream that stalls mid-way, a crash
//! with close code 1011, an upgrade that never answers, another stall), which opens the
//! circuit breaker and raises ProbeFailing, then a healthy stretch long enough for the
//! half-open trial to succeed, the breaker to close and the alert to resolve.

use std::time::Duration;

/// One connection's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlakyMode {
    /// Welcome, then the requested events with short gaps.
    Healthy,
    /// Waits before answering the upgrade, then behaves. Longer than the demo's
    /// handshake timeout, it fails the probe with `handshake_timeout`.
    SlowUpgrade(Duration),
    /// Welcome, the first event of the run, then silence (pings still answered): the
    /// probe's `max_gap` fails it as `stalled`.
    Stall,
    /// Welcome, then a close with code 1011: `unexpected_close`.
    CloseAfterWelcome,
}

/// The demo's handshake timeout; [`HANG`] waits past it.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// An upgrade that answers too late.
const HANG: Duration = Duration::from_secs(4);

/// The cycle. Failures are consecutive so the breaker (3 in a row) and ProbeFailing
/// (3 in a row) trip; ten healthy connections follow, enough for the breaker's recovery
/// timeout (three intervals), its two successful trials and the alert's two successes.
pub(crate) const FLAKY_CYCLE: [FlakyMode; 20] = {
    use FlakyMode::{CloseAfterWelcome as Crash, Healthy as H, SlowUpgrade, Stall};
    [
        H,
        H,
        SlowUpgrade(Duration::from_millis(800)),
        H,
        H,
        H,
        Stall,
        Crash,
        SlowUpgrade(HANG),
        Stall,
        H,
        H,
        H,
        H,
        H,
        H,
        H,
        H,
        H,
        H,
    ]
};

/// The mode of the `n`-th connection (0-based).
pub(crate) fn mode(n: u64) -> FlakyMode {
    FLAKY_CYCLE[(n % FLAKY_CYCLE.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_has_a_run_of_failures_long_enough_to_trip_and_a_recovery_long_enough_to_close() {
        let fails = |m: &FlakyMode| match m {
            FlakyMode::Healthy => false,
            FlakyMode::SlowUpgrade(d) => *d >= HANDSHAKE_TIMEOUT,
            FlakyMode::Stall | FlakyMode::CloseAfterWelcome => true,
        };
        let first = FLAKY_CYCLE.iter().position(fails).unwrap_or_default();
        let run = FLAKY_CYCLE[first..].iter().take_while(|m| fails(m)).count();
        assert!(run >= 3, "{run} failures in a row");
        let healthy_after = FLAKY_CYCLE[first + run..].iter().take_while(|m| !fails(m)).count();
        assert!(healthy_after >= 8, "{healthy_after} healthy connections after the failures");
        assert_eq!(mode(FLAKY_CYCLE.len() as u64 + 6), FlakyMode::Stall);
    }
}
