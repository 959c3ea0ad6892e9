//! The circuit breaker kept per target: would a client of the service be tripping its
//! breaker right now?
//!
//! A pure state machine: it is fed probe outcomes and the time, and returns transitions.
//! No I/O and no runtime, so every rule is tested with plain `Instant` arithmetic.
//!
//! - `closed` → `open` after `failure_threshold` consecutive failures, or, with
//!   `failure_ratio`, when at least `ratio` of the last `window` probes failed (once
//!   `min_probes` are in the window). Either condition trips it.
//! - `open` → `half_open` when `recovery_timeout` has passed (time alone: see
//!   [`Breaker::poll`]). Outcomes while open are counted but change nothing, as calls a
//!   real breaker would have refused.
//! - `half_open` → `closed` after `success_threshold` consecutive successes, back to `open`
//!   on any failure.
//!
//! While open or half-open the target is probed every `open_interval` ([`probe_interval`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod metrics;
mod settings;

pub(crate) use settings::{check_breaker, merge_breaker, RawBreaker};
pub use settings::{FailureRatio, Settings};

crate::label_enum! {
    /// A breaker's state; `as_str` values are the `state` label values.
    pub enum State("state") {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
    }
}

/// The time between probes of a target whose breaker is in `state`.
pub(crate) fn probe_interval(state: State, interval: Duration, open_interval: Duration) -> Duration {
    match state {
        State::Closed => interval,
        State::Open | State::HalfOpen => open_interval,
    }
}

/// A change of state and the reason for it, in words for the log and the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// A probe outcome as the breaker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Success,
    /// A failure, described for messages (e.g. `handshake_status in handshake`).
    Failure(&'a str),
}

/// One target's breaker.
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    settings: Settings,
    state: State,
    since: Instant,
    reason: String,
    consecutive_failures: u64,
    consecutive_successes: u64,
    /// Recent outcomes while closed (`true`: failed), newest last; only with a ratio.
    window: VecDeque<bool>,
}

impl Breaker {
    /// A closed breaker, as of `now`.
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            settings,
            state: State::Closed,
            since: now,
            reason: "no failures yet".to_owned(),
            consecutive_failures: 0,
            consecutive_successes: 0,
            window: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Why the breaker is in its current state.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures
    }

    pub fn consecutive_successes(&self) -> u64 {
        self.consecutive_successes
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// When time alone will change the state (open → half-open), if it will.
    pub fn deadline(&self) -> Option<Instant> {
        (self.state == State::Open).then(|| self.since + self.settings.recovery_timeout)
    }

    /// Applies the passage of time: an open breaker whose recovery timeout has passed
    /// becomes half-open. Call before [`Breaker::record`] and whenever
    /// [`Breaker::deadline`] is reached.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        let reason = format!(
            "the recovery timeout of {} passed; the next probes are trials",
            humantime::format_duration(self.settings.recovery_timeout)
        );
        Some(self.enter(State::HalfOpen, deadline, reason))
    }

    /// Feeds one probe outcome, observed at `now`. Returns what changed, oldest first:
    /// usually nothing or one transition, two when the recovery timeout had passed
    /// unnoticed (open → half-open, then the outcome judged as a trial).
    pub fn record(&mut self, outcome: Outcome<'_>, now: Instant) -> Vec<Transition> {
        let mut changes: Vec<Transition> = self.poll(now).into_iter().collect();
        let changed = match outcome {
            Outcome::Success => {
                self.consecutive_failures = 0;
                self.consecutive_successes += 1;
                self.on_success(now)
            }
            Outcome::Failure(what) => {
                self.consecutive_successes = 0;
                self.consecutive_failures += 1;
                self.on_failure(what, now)
            }
        };
        changes.extend(changed);
        changes
    }

    fn on_success(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed => {
                self.push_window(false);
                None
            }
            State::Open => None,
            State::HalfOpen => {
                let needed = u64::from(self.settings.success_threshold.get());
                if self.consecutive_successes < needed {
                    return None;
                }
                let reason = match needed {
                    1 => "a trial probe succeeded".to_owned(),
                    n => format!("{n} consecutive trial probes succeeded"),
                };
                Some(self.enter(State::Closed, now, reason))
            }
        }
    }

    fn on_failure(&mut self, what: &str, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed => {
                self.push_window(true);
                let threshold = u64::from(self.settings.failure_threshold.get());
                if self.consecutive_failures >= threshold {
                    let reason = match threshold {
                        1 => format!("a probe failed: {what}"),
                        n => format!("{n} consecutive failures, last: {what}"),
                    };
                    return Some(self.enter(State::Open, now, reason));
                }
                let ratio = self.settings.failure_ratio?;
                let len = self.window.len();
                let failed = self.window.iter().filter(|f| **f).count();
                if len >= ratio.min_probes.max(1) && failed as f64 >= ratio.ratio * len as f64 {
                    let reason = format!(
                        "{failed} of the last {len} probes failed (at least {}%), last: {what}",
                        ratio.ratio * 100.0
                    );
                    return Some(self.enter(State::Open, now, reason));
                }
                None
            }
            State::Open => None,
            State::HalfOpen => {
                let reason = format!("a trial probe failed: {what}");
                Some(self.enter(State::Open, now, reason))
            }
        }
    }

    fn push_window(&mut self, failed: bool) {
        let Some(ratio) = self.settings.failure_ratio else { return };
        self.window.push_back(failed);
        while self.window.len() > ratio.window {
            self.window.pop_front();
        }
    }

    fn enter(&mut self, to: State, at: Instant, reason: String) -> Transition {
        let from = self.state;
        self.state = to;
        self.since = at;
        self.reason.clone_from(&reason);
        // Each state starts counting afresh; `consecutive_failures` keeps running across
        // states for the API, but the window does not carry over from a previous episode.
        self.window.clear();
        if to == State::HalfOpen {
            self.consecutive_successes = 0;
        }
        Transition { from, to, reason }
    }
}

/// A breaker as shown in `/api/targets`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CircuitStatus {
    pub state: State,
    /// Unix time the current state began.
    pub since: f64,
    /// Why it is in this state.
    pub reason: String,
    pub consecutive_failures: u64,
    pub consecutive_successes: u64,
    /// Transitions since the target's task started.
    pub transitions: u64,
    /// Seconds between probes in the current state.
    pub probe_interval_seconds: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> Settings {
        Settings {
            open_interval: Duration::from_secs(60),
            ..Settings::with_interval(Duration::from_secs(10))
        }
    }

    /// Feeds one outcome that may change the state at most once.
    fn one(b: &mut Breaker, outcome: Outcome<'_>, at: Instant) -> Option<Transition> {
        let mut changes = b.record(outcome, at);
        assert!(changes.len() <= 1, "{changes:?}");
        changes.pop()
    }

    fn fail(b: &mut Breaker, at: Instant) -> Option<Transition> {
        one(b, Outcome::Failure("connect_refused in connect"), at)
    }

    fn ok(b: &mut Breaker, at: Instant) -> Option<Transition> {
        one(b, Outcome::Success, at)
    }

    #[test]
    fn defaults_are_the_incident_breaker() {
        let s = Settings::with_interval(Duration::from_secs(30));
        assert_eq!(s.failure_threshold.get(), 3);
        assert_eq!(s.recovery_timeout, Duration::from_secs(15));
        assert_eq!(s.success_threshold.get(), 2);
        assert_eq!(s.open_interval, Duration::from_secs(30));
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        assert_eq!(fail(&mut b, t0 + MS), None);
        assert_eq!(fail(&mut b, t0 + 2 * MS), None);
        // A success in between resets the count.
        assert_eq!(ok(&mut b, t0 + 3 * MS), None);
        assert_eq!(fail(&mut b, t0 + 4 * MS), None);
        assert_eq!(fail(&mut b, t0 + 5 * MS), None);
        assert_eq!(b.state(), State::Closed);
        let t = fail(&mut b, t0 + 6 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        assert_eq!(t.reason, "3 consecutive failures, last: connect_refused in connect");
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.since(), t0 + 6 * MS);
        assert_eq!(b.consecutive_failures(), 3);
    }

    #[test]
    fn a_failure_ratio_over_the_window_also_trips_it() {
        let ratio = FailureRatio { ratio: 0.5, window: 6, min_probes: 4 };
        let s = Settings { failure_ratio: Some(ratio), ..settings() };
        let t0 = Instant::now();
        let mut b = Breaker::new(s, t0);
        // Alternating: never 3 in a row, but half of them fail.
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(ok(&mut b, t0), None);
        // 1 of 3 failed: under min_probes anyway.
        assert_eq!(ok(&mut b, t0), None);
        let t = fail(&mut b, t0 + MS).unwrap();
        assert_eq!(t.to, State::Open);
        assert_eq!(
            t.reason,
            "2 of the last 4 probes failed (at least 50%), last: connect_refused in connect"
        );

        // The window slides: old failures fall out of it.
        let mut b = Breaker::new(s, t0);
        fail(&mut b, t0);
        for _ in 0..6 {
            assert_eq!(ok(&mut b, t0), None);
        }
        // The window now holds 6 successes; 2 failures make 2 of 6 (33%).
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(ok(&mut b, t0), None);
        assert_eq!(fail(&mut b, t0), None);
        // 3 of 6 (the oldest successes dropped out).
        assert_eq!(ok(&mut b, t0), None);
        assert_eq!(fail(&mut b, t0).map(|t| t.to), Some(State::Open));
    }

    #[test]
    fn open_turns_half_open_after_the_recovery_timeout_and_ignores_outcomes_meanwhile() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(15)));
        // Successes while open are calls a real breaker would have refused.
        assert_eq!(ok(&mut b, t0 + Duration::from_secs(5)), None);
        assert_eq!(ok(&mut b, t0 + Duration::from_secs(6)), None);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.poll(t0 + Duration::from_secs(15) - MS), None);
        let t = b.poll(t0 + Duration::from_secs(16)).unwrap();
        assert_eq!((t.from, t.to), (State::Open, State::HalfOpen));
        assert_eq!(t.reason, "the recovery timeout of 15s passed; the next probes are trials");
        // The state began when the timeout ran out, not when it was noticed.
        assert_eq!(b.since(), t0 + Duration::from_secs(15));
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn half_open_closes_after_the_success_threshold() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let later = t0 + Duration::from_secs(15);
        b.poll(later);
        assert_eq!(ok(&mut b, later + MS), None);
        assert_eq!(b.state(), State::HalfOpen);
        let t = ok(&mut b, later + 2 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
        assert_eq!(t.reason, "2 consecutive trial probes succeeded");
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn a_failure_in_half_open_reopens_and_restarts_the_recovery_timeout() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let half = t0 + Duration::from_secs(15);
        b.poll(half);
        ok(&mut b, half + MS);
        let t = one(&mut b, Outcome::Failure("handshake_status in handshake"), half + 2 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Open));
        assert_eq!(t.reason, "a trial probe failed: handshake_status in handshake");
        assert_eq!(b.deadline(), Some(half + 2 * MS + Duration::from_secs(15)));
    }

    #[test]
    fn an_outcome_after_the_deadline_is_judged_in_half_open() {
        // The scheduler normally polls at the deadline; if it did not, a result arriving
        // later still counts as the trial.
        let t0 = Instant::now();
        let s = Settings { success_threshold: NonZeroU32::MIN, ..settings() };
        let mut b = Breaker::new(s, t0);
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let changes = b.record(Outcome::Success, t0 + Duration::from_secs(20));
        let path: Vec<_> = changes.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(path, [(State::Open, State::HalfOpen), (State::HalfOpen, State::Closed)]);
        assert_eq!(changes[1].reason, "a trial probe succeeded");
    }

    #[test]
    fn flapping_cycles_through_every_state_and_counts_each_transition() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        let mut now = t0;
        let mut seen = Vec::new();
        for _cycle in 0..3 {
            for _ in 0..3 {
                now += Duration::from_secs(1);
                seen.extend(fail(&mut b, now));
            }
            now += Duration::from_secs(15);
            seen.extend(b.poll(now));
            now += Duration::from_secs(1);
            seen.extend(ok(&mut b, now));
            now += Duration::from_secs(1);
            seen.extend(ok(&mut b, now));
        }
        // Then a relapse during the trial.
        for _ in 0..3 {
            seen.extend(fail(&mut b, now));
        }
        now += Duration::from_secs(15);
        seen.extend(b.poll(now));
        seen.extend(fail(&mut b, now));
        let path: Vec<(State, State)> = seen.iter().map(|t| (t.from, t.to)).collect();
        let cycle =
            [(State::Closed, State::Open), (State::Open, State::HalfOpen), (State::HalfOpen, State::Closed)];
        let mut expected: Vec<_> = cycle.iter().copied().cycle().take(9).collect();
        expected.extend([
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
        ]);
        assert_eq!(path, expected);
    }

    #[test]
    fn open_and_half_open_probe_at_the_open_interval() {
        let (i, oi) = (Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(probe_interval(State::Closed, i, oi), i);
        assert_eq!(probe_interval(State::Open, i, oi), oi);
        assert_eq!(probe_interval(State::HalfOpen, i, oi), oi);
    }
}
