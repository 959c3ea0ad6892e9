//! Clock arithmetic that cannot overflow, and the wall clock as Unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// About thirty years: "never" for a deadline, and still far from `Instant`'s limits.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `start + d`, saturating at [`FAR_FUTURE`] from `start` instead of panicking on
/// overflow, whatever `d` is.
pub fn deadline(start: Instant, d: Duration) -> Instant {
    let d = d.min(FAR_FUTURE);
    start.checked_add(d).unwrap_or(start)
}

/// Now, as the time since the Unix epoch (zero if the clock is before 1970).
pub fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Now, as Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// `t` as Unix seconds (0 if it is before 1970).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `1.5s`, `250ms`: durations as users write them in the configuration.
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64))
        .to_string()
}

/// Phase timings as a log line shows them, `dns=0.1ms connect=0.2ms`, from a function
/// giving `(phase, seconds)` pairs: formatted straight into the line, and only when the
/// line is written.
pub struct PhaseText<F>(pub F);

// By hand: a closure has no `Debug`.
impl<F> std::fmt::Debug for PhaseText<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhaseText")
    }
}

impl<F, I, N> std::fmt::Display for PhaseText<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (N, f64)>,
    N: std::fmt::Display,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (phase, secs)) in (self.0)().enumerate() {
            let gap = if i == 0 { "" } else { " " };
            write!(f, "{gap}{phase}={:.1}ms", secs * 1000.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_text_lists_each_phase_in_milliseconds() {
        let phases = [("dns", 0.0001), ("connect", 0.00025), ("total", 1.5)];
        assert_eq!(PhaseText(|| phases.into_iter()).to_string(), "dns=0.1ms connect=0.2ms total=1500.0ms");
        assert_eq!(PhaseText(std::iter::empty::<(&str, f64)>).to_string(), "");
    }

    #[test]
    fn deadlines_saturate() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::from_secs(1)), now + Duration::from_secs(1));
        assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
    }
}
