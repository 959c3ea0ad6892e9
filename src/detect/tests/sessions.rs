//! The session rules, on simulated held sessions with explicit timestamps.

use super::super::stats::poisson_tail;
use super::*;

const STREAM: &str = "staging-stream";

/// Held sessions of one target, simulated a second at a time as the live engine sees
/// them: the open count reported on change, a disconnect per cut, pings every 15 s.
struct Held {
    detector: Detector,
    now: f64,
    /// When each session opened; `None` while it is down (reopened after a second).
    sessions: Vec<Option<f64>>,
    down_since: Vec<f64>,
    reported: Option<(u32, u32)>,
    log: Vec<Transition>,
}

impl Held {
    fn new(count: usize) -> Self {
        Self::with(count, DetectorConfig::default())
    }

    fn with(count: usize, config: DetectorConfig) -> Self {
        assert_eq!(config.validate("detector"), Vec::<String>::new());
        Self {
            detector: Detector::new(config),
            now: T0,
            sessions: vec![Some(T0); count],
            down_since: vec![T0; count],
            reported: None,
            log: Vec::new(),
        }
    }

    fn event(&mut self, event: SessionEvent) {
        self.log.extend(self.detector.observe_session(STREAM, &event, self.now));
    }

    /// Runs for `duration` seconds; sessions are cut after `cut_after` seconds (never with
    /// `None`) and stay down `down` seconds; each ping answers in `rtt` seconds.
    fn run(&mut self, duration: f64, cut_after: Option<f64>, down: f64, rtt: f64) {
        let end = self.now + duration;
        while self.now < end {
            for i in 0..self.sessions.len() {
                match self.sessions[i] {
                    Some(opened) if cut_after.is_some_and(|l| self.now - opened >= l) => {
                        self.sessions[i] = None;
                        self.down_since[i] = self.now;
                        let lifetime_seconds = self.now - opened;
                        self.event(SessionEvent::Disconnect {
                            reason: Reason::UnexpectedClose,
                            lifetime_seconds,
                            close_code: Some(1006),
                        });
                    }
                    Some(opened) if (self.now - opened) % 15.0 == 14.0 => {
                        self.event(SessionEvent::PingRtt { seconds: rtt });
                    }
                    None if self.now - self.down_since[i] >= down => self.sessions[i] = Some(self.now),
                    _ => {}
                }
            }
            let open = self.sessions.iter().flatten().count() as u32;
            let counts = (open, self.sessions.len() as u32);
            if self.reported != Some(counts) {
                self.reported = Some(counts);
                self.event(SessionEvent::Open { open: counts.0, configured: counts.1 });
            }
            self.log.extend(self.detector.tick(self.now));
            self.now += 1.0;
        }
    }

    fn transitions(&self, kind: AlertKind, to: AlertState) -> Vec<&Transition> {
        self.log.iter().filter(|t| t.alert.key.kind == kind && t.to == to).collect()
    }
}

#[test]
fn sessions_cut_after_a_minute_raise_sessions_dropping_with_their_lifetime() {
    let mut h = Held::new(2);
    // Three quiet hours of two held sessions: the baseline has no disconnects.
    h.run(3.0 * HOUR, None, 1.0, 0.002);
    assert!(h.log.iter().all(|t| t.alert.key.kind != AlertKind::SessionsDropping), "{:?}", h.log);
    let cut_from = h.now;
    // A load balancer now cuts every session after 60 s.
    h.run(20.0 * MIN, Some(60.0), 1.0, 0.002);
    let pending = h.transitions(AlertKind::SessionsDropping, AlertState::Pending);
    let firing = h.transitions(AlertKind::SessionsDropping, AlertState::Firing);
    assert_eq!((pending.len(), firing.len()), (1, 1), "{:?}", h.log);
    // The first cut ends both three-hour sessions, the second their successors 61 s later:
    // four disconnects in 20 minutes of sessions are far beyond chance at the bound of a
    // clean baseline (2 in 5 h 40 min of sessions), where two are not (min_disconnects 3).
    let became = pending[0].at - cut_from;
    assert_eq!(became, 61.0, "pending {became}s after the cuts began");
    assert!((firing[0].at - pending[0].at - 300.0).abs() < 1.0, "for: 5m");
    let d = &firing[0].alert.description;
    assert!(d.starts_with("sessions to staging-stream end after 60s (median of "), "{d}");
    assert!(d.contains("baseline: no disconnects;"), "{d}");
    assert!(d.ends_with("last: unexpected_close (close code 1006)"), "{d}");
    assert_eq!(firing[0].alert.summary, "Sessions to staging-stream keep ending");
    let m = firing[0].alert.measurement.clone().unwrap();
    assert_eq!(m.baseline, Some(0.0));
    // 12 disconnects in the 11 minutes of the window, 6 of them cut: about 35 an hour.
    assert!(m.value > 30.0, "disconnects per session-hour: {m:?}");

    // The cutting stops: the alert resolves once the window is clean for `resolve_after`.
    let fixed_at = h.now;
    h.run(40.0 * MIN, None, 1.0, 0.002);
    let resolved = h.transitions(AlertKind::SessionsDropping, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "{:?}", h.log);
    let after = resolved[0].at - fixed_at;
    // The last disconnect (up to 61 s before the fix) leaves the 10-minute window (plus up
    // to a bucket), then `resolve_after` (10m).
    assert!((1130.0..=1270.0).contains(&after), "resolved {after}s after the fix");
}

#[test]
fn cuts_that_are_the_baseline_raise_nothing() {
    let mut h = Held::new(2);
    // Sessions have always lasted five minutes (say, the server's own limit).
    h.run(4.0 * HOUR, Some(300.0), 1.0, 0.002);
    assert!(h.log.iter().all(|t| t.alert.key.kind != AlertKind::SessionsDropping), "{:?}", h.log);
    // Without a baseline of an hour's sessions, cuts are not compared at all.
    let mut young = Held::new(1);
    young.run(50.0 * MIN, None, 1.0, 0.002);
    young.run(20.0 * MIN, Some(30.0), 1.0, 0.002);
    assert!(
        young.transitions(AlertKind::SessionsDropping, AlertState::Pending).is_empty(),
        "{:?}",
        young.log
    );
}

#[test]
fn fewer_sessions_open_than_configured_fires_after_for_and_resolves_when_back() {
    let mut h = Held::new(3);
    h.run(10.0 * MIN, None, 1.0, 0.002);
    assert!(h.log.is_empty(), "{:?}", h.log);
    // A session cut and reopened after 30 s goes pending and clears silently.
    h.sessions[0] = None;
    h.down_since[0] = h.now;
    h.run(2.0 * MIN, None, 30.0, 0.002);
    let kind = AlertKind::SessionsBelowConfigured;
    assert_eq!(h.transitions(kind, AlertState::Pending).len(), 1);
    assert_eq!(h.transitions(kind, AlertState::Inactive).len(), 1);
    assert!(h.transitions(kind, AlertState::Firing).is_empty());
    // One that cannot reconnect for 5 minutes fires after `for` (2m) and resolves at once.
    h.sessions[1] = None;
    h.down_since[1] = h.now;
    let down_at = h.now;
    h.run(10.0 * MIN, None, 300.0, 0.002);
    let firing = h.transitions(kind, AlertState::Firing);
    assert_eq!(firing.len(), 1, "{:?}", h.log);
    assert_eq!(firing[0].at - down_at, 120.0);
    assert_eq!(firing[0].alert.description, "2 of 3 sessions to staging-stream are open");
    let resolved = h.transitions(kind, AlertState::Resolved);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].at - down_at, 300.0);
    assert!(h.detector.alerts().is_empty());
}

#[test]
fn slower_ping_round_trips_raise_their_own_alert() {
    let mut h = Held::new(2);
    h.run(2.0 * HOUR, None, 1.0, 0.002);
    let started = h.now;
    h.run(10.0 * MIN, None, 1.0, 0.150);
    let kind = AlertKind::SessionPingRTTRegression;
    let firing = h.transitions(kind, AlertState::Firing);
    assert_eq!(firing.len(), 1, "{:?}", h.log);
    // The window holds about 80 fast samples, so the p95 is read at the 7th slowest (4, and
    // one more per 20 samples past 20): four rounds of two pings, 60 s; then `for: 3m`.
    let after = firing[0].at - started;
    assert!((235.0..=245.0).contains(&after), "fired {after}s after the slowdown");
    let d = &firing[0].alert.description;
    assert!(d.starts_with("p95 session ping round trip 150ms vs baseline 2ms over the last 10m"), "{d}");
    assert!(h.transitions(AlertKind::SessionHeartbeatRTTRegression, AlertState::Pending).is_empty());
    assert!(h.transitions(AlertKind::SessionsDropping, AlertState::Pending).is_empty());

    // Heartbeats are their own series.
    let mut h = Held::new(1);
    for i in 0..600 {
        h.now = T0 + f64::from(i) * 15.0;
        let seconds = if i < 560 { 0.010 } else { 0.400 };
        h.event(SessionEvent::HeartbeatRtt { seconds });
        h.log.extend(h.detector.tick(h.now));
    }
    let firing = h.transitions(AlertKind::SessionHeartbeatRTTRegression, AlertState::Firing);
    assert_eq!(firing.len(), 1, "{:?}", h.log);
    assert!(firing[0].alert.summary.starts_with("session heartbeat round trip of staging-stream"));
}

#[test]
fn the_session_baseline_survives_a_restart() {
    let mut h = Held::new(2);
    h.run(3.0 * HOUR, None, 1.0, 0.002);
    let json = serde_json::to_string(&h.detector.snapshot()).unwrap();
    let mut restored = Detector::new(DetectorConfig::default());
    let report = restored.restore(serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(report, RestoreReport { targets: 1, notes: Vec::new() });
    h.detector = restored;
    h.run(20.0 * MIN, Some(60.0), 1.0, 0.002);
    assert_eq!(h.transitions(AlertKind::SessionsDropping, AlertState::Firing).len(), 1, "{:?}", h.log);
}

#[test]
fn events_parse_from_their_record_form() {
    let e: SessionEvent =
        serde_json::from_str(r#"{"event":"disconnect","reason":"stalled","lifetime_seconds":360.0}"#)
            .unwrap();
    assert_eq!(
        e,
        SessionEvent::Disconnect { reason: Reason::Stalled, lifetime_seconds: 360.0, close_code: None }
    );
    let open = SessionEvent::Open { open: 1, configured: 2 };
    assert_eq!(serde_json::to_string(&open).unwrap(), r#"{"event":"open","open":1,"configured":2}"#);
    assert!(serde_json::from_str::<SessionEvent>(r#"{"event":"open","open":1}"#).is_err());
}

#[test]
fn the_poisson_tail_is_right_at_both_ends() {
    // P(X >= 1) = 1 - e^-m; P(X >= 3) at m = 2 is 1 - 5e^-2.
    assert!((poisson_tail(0.5, 1) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
    assert!((poisson_tail(2.0, 3) - (1.0 - 5.0 * (-2.0f64).exp())).abs() < 1e-12);
    // Tiny tails keep their precision: about m^k / k!.
    let p = poisson_tail(1e-3, 4);
    assert!((p / (1e-12 / 24.0) - 1.0).abs() < 1e-2, "{p}");
    assert_eq!(poisson_tail(0.0, 1), 0.0);
    assert_eq!(poisson_tail(3.0, 0), 1.0);
}
