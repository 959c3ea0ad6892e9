//! Schedule keeping: how late each probe starts against the moment it was due.
//!
//! A daemon with more work than CPU (or than `max_concurrent_probes` slots) starts its
//! probes late rather than failing them, which silently stretches every interval. So each
//! start is measured: its lag goes into one histogram for the whole daemon
//! (`wsprobe_probe_start_lag_seconds`), a start later than the target's tolerance is
//! counted per target (`wsprobe_probes_late_total`), and a WARN says so, at most once per
//! [`WARN_EVERY`] for the whole daemon, summing up what happened since the last one, so
//! ten thousand late targets make one line, not ten thousand.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use prometheus::Histogram;

use crate::metrics::TargetCounter;

/// The shortest time between two "probes are late" warnings.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(30);

/// How late a probe may start before it counts as late: a tenth of its interval, at least
/// 100 ms (timer and scheduling noise) and at most 5 s (beyond that nobody calls it on time).
pub(crate) fn tolerance(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Late starts since the last warning.
#[derive(Debug, Default)]
struct Pending {
    last_warn: Option<Instant>,
    late: u64,
    worst: Duration,
    worst_target: String,
}

/// The daemon's schedule keeper, shared by every target task. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Lateness {
    pub late: TargetCounter,
    pub lag: Histogram,
    pending: Arc<Mutex<Pending>>,
}

impl Lateness {
    pub(crate) fn new(late: TargetCounter, lag: Histogram) -> Self {
        Self { late, lag, pending: Arc::default() }
    }

    /// A probe of `target` due at `due` starts at `now`.
    pub(crate) fn started(&self, target: &str, interval: Duration, due: Instant, now: Instant) {
        let lag = now.saturating_duration_since(due);
        self.lag.observe(lag.as_secs_f64());
        if lag <= tolerance(interval) {
            return;
        }
        self.late.with_label_values(&[target]).inc();
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.late += 1;
        if lag > p.worst {
            p.worst = lag;
            target.clone_into(&mut p.worst_target);
        }
        if p.last_warn.is_some_and(|at| now.saturating_duration_since(at) < WARN_EVERY) {
            return;
        }
        let since = p.last_warn.map_or_else(String::new, |at| {
            format!(
                " in the last {}",
                humantime::format_duration(Duration::from_secs(now.duration_since(at).as_secs()))
            )
        });
        tracing::warn!(
            late = p.late,
            worst_target = %p.worst_target,
            worst_lag_seconds = p.worst.as_secs_f64(),
            "{} probe(s){since} started later than their tolerance (worst: `{}`, {} ms late): \
             the daemon cannot keep its schedule; see wsprobe_probes_late_total. \
             Give it more CPU, fewer targets, longer intervals or more probe slots.",
            p.late,
            p.worst_target,
            p.worst.as_millis(),
        );
        *p = Pending { last_warn: Some(now), ..Pending::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn late_starts_are_counted_and_warned_about_at_most_once_per_window() {
        let registry = crate::metrics::Registry::new().unwrap_or_else(|e| panic!("{e}"));
        let late = registry.target_counter("late_total", "h", &["target"]).unwrap_or_else(|e| panic!("{e}"));
        let lag = registry.latency_histogram("lag_seconds", "h").unwrap_or_else(|e| panic!("{e}"));
        let lateness = Lateness::new(late.clone(), lag.clone());
        let log = Captured::default();
        let writer = log.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let (t0, second) = (Instant::now(), Duration::from_secs(1));
        let ms = Duration::from_millis;
        tracing::subscriber::with_default(subscriber, || {
            lateness.started("a", second, t0, t0 + ms(50)); // within 100 ms: on time
            lateness.started("a", second, t0, t0 + ms(300)); // late: the first warning
            lateness.started("b", second, t0, t0 + ms(2000)); // late, within 30 s of it: quiet
            lateness.started("a", second, t0 + ms(30_000), t0 + ms(31_000)); // late, 30.7 s on: warned
        });
        assert_eq!(late.with_label_values(&["a"]).get(), 2);
        assert_eq!(late.with_label_values(&["b"]).get(), 1);
        assert_eq!(lag.get_sample_count(), 4, "every start's lag is observed");
        let text =
            String::from_utf8_lossy(&log.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("cannot keep its schedule")).collect();
        assert_eq!(warnings.len(), 2, "{text}");
        assert!(
            warnings[0].contains("1 probe(s) started later") && warnings[0].contains("`a`, 300 ms late"),
            "{text}"
        );
        assert!(
            warnings[1].contains("2 probe(s) in the last 30s") && warnings[1].contains("`b`, 2000 ms late"),
            "{text}"
        );
    }

    #[test]
    fn tolerance_is_a_tenth_of_the_interval_within_bounds() {
        assert_eq!(tolerance(Duration::from_millis(200)), Duration::from_millis(100));
        assert_eq!(tolerance(Duration::from_secs(15)), Duration::from_millis(1500));
        assert_eq!(tolerance(Duration::from_secs(3600)), Duration::from_secs(5));
    }
}
