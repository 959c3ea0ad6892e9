//! How large (or small) a configured duration may be, per kind of duration.
//!
//! Every duration the file can hold is checked against one of these limits while the
//! configuration is validated, so a value that `wsprobe check` accepts can never overflow
//! the clock arithmetic of a running probe, breaker, check or alert. The maxima are what a
//! demanding operator could still mean; anything beyond is a typo (`500000000000y`).

use std::time::Duration;

use super::units::HumanDuration;

/// The range a kind of duration must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Shortest accepted value; zero is always refused as "must be positive".
    pub min: Duration,
    pub max: Duration,
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// Deadlines and waits of one probe, step, check or delivery: timeouts, `within`, `hold`,
/// `sleep`, `max_gap`, the breaker's `recovery_timeout`. A day is longer than any
/// session worth probing.
pub(crate) const DEADLINE: Limit = Limit { min: Duration::from_nanos(1), max: Duration::from_secs(DAY) };

/// How often something runs: a target's `interval`, `open_interval`, health checks and
/// remote-breaker polls. At least 10 ms: below that the timer's millisecond resolution
/// makes the cadence meaningless and a probe (a fresh connection every time) turns into
/// a load test; at most a day, beyond which it is not monitoring.
pub const INTERVAL: Limit = Limit { min: Duration::from_millis(10), max: Duration::from_secs(DAY) };

/// `shutdown_grace`: how long stopping may wait for sessions to close (0: not at all).
pub(crate) const GRACE: Limit = Limit { min: Duration::ZERO, max: Duration::from_secs(HOUR) };

/// Alert lifecycle delays: `for`, `resolve_after`, `resend_interval`. A week.
pub(crate) const ALERT_DELAY: Limit = Limit { min: Duration::ZERO, max: Duration::from_secs(7 * DAY) };

/// The detector's windows and buckets and `time_of_day_span`: 30 days, a month of
/// half-hour buckets (their count is capped separately, which bounds memory).
pub(crate) const WINDOW: Limit = Limit { min: Duration::from_nanos(1), max: Duration::from_secs(30 * DAY) };

/// A latency amount (`margin`, `resolve_margin`): no latency exceeds a probe's deadline.
pub(crate) const LATENCY: Limit = Limit { min: Duration::ZERO, max: Duration::from_secs(DAY) };

/// What is wrong with `value` under `limit`, completing "`<field>`: ...", or `None`.
pub fn problem(value: HumanDuration, limit: Limit) -> Option<String> {
    let d = value.get();
    if d.is_zero() && !limit.min.is_zero() {
        return Some("must be positive".to_owned());
    }
    if d > limit.max {
        return Some(format!("{value} is too long (at most {})", HumanDuration(limit.max)));
    }
    if d < limit.min {
        return Some(format!("{value} is too short (at least {})", HumanDuration(limit.min)));
    }
    None
}

/// Checks an optional field written as `<field>: <value>`, pushing `<field>: <why>`.
pub fn check(field: &str, value: Option<HumanDuration>, limit: Limit, problems: &mut Vec<String>) {
    if let Some(why) = value.and_then(|v| problem(v, limit)) {
        problems.push(format!("{field}: {why}"));
    }
}

/// The largest message (`max_message_size`) or body (`max_body_size`) a probe or check may
/// be told to accept: each is held in memory whole, so a typo of a few digits must not
/// let one server take gigabytes.
pub(crate) const MAX_HELD_BYTES: u64 = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_range() {
        let d = |s: &str| s.parse::<HumanDuration>().unwrap_or_default();
        assert_eq!(problem(d("0s"), DEADLINE).as_deref(), Some("must be positive"));
        assert_eq!(
            problem(d("500000000000y"), DEADLINE).as_deref(),
            Some("500000000000years is too long (at most 1day)")
        );
        assert_eq!(problem(d("24h"), DEADLINE), None);
        assert_eq!(problem(d("1ns"), INTERVAL).as_deref(), Some("1ns is too short (at least 10ms)"));
        assert_eq!(problem(d("10ms"), INTERVAL), None);
        assert_eq!(problem(d("0s"), ALERT_DELAY), None);
        assert_eq!(problem(d("8d"), ALERT_DELAY).as_deref(), Some("8days is too long (at most 7days)"));
    }
}
