//! The wait before a session reconnects: exponential, jittered, never zero.
//!
//! Every reconnect waits, after a failed connect and after a disconnect alike, so a
//! server that refuses or cuts every session is met at a bounded rate. The nominal wait
//! starts at `initial` and doubles with each consecutive failure up to `max`; the actual
//! wait is drawn uniformly from 80 % to 100 % of it, so sessions cut together do not
//! reconnect together, and the rate stays below `1 / (0.8 × initial)`. A session that
//! stayed open at least `max` was healthy: the next wait starts from `initial` again.

use std::time::Duration;

use rand::Rng;

use super::settings::Reconnect;

/// The lowest fraction of the nominal wait a jittered wait can be.
pub const JITTER_FLOOR: f64 = 0.8;

/// One session's back-off state: a few bytes, no timer.
#[derive(Debug, Clone)]
pub struct Backoff {
    settings: Reconnect,
    nominal: Duration,
}

impl Backoff {
    pub fn new(settings: Reconnect) -> Self {
        Self { settings, nominal: settings.initial }
    }

    /// The wait before the next connect attempt; the one after it is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.nominal.mul_f64(rand::rng().random_range(JITTER_FLOOR..=1.0));
        self.nominal = self.nominal.saturating_mul(2).min(self.settings.max);
        wait
    }

    /// A session ended after `lifetime`: a long one resets the back-off.
    pub fn session_ended(&mut self, lifetime: Duration) {
        if lifetime >= self.settings.max {
            self.nominal = self.settings.initial;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_max_and_reset_after_a_long_session() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(Reconnect { initial: ms(100), max: ms(400) });
        let nominal = [100, 200, 400, 400];
        for n in nominal {
            let w = b.next_wait();
            assert!(w >= ms(n).mul_f64(JITTER_FLOOR) && w <= ms(n), "{w:?} for nominal {n}ms");
        }
        b.session_ended(ms(399));
        assert!(b.next_wait() >= ms(320), "a short session does not reset");
        b.session_ended(ms(400));
        assert!(b.next_wait() <= ms(100), "a session as long as max resets");
    }
}
