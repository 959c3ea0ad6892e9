//! Synthetic probe results with explicit timestamps; no clock, no I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::format::{fmt_chance, ordinal};
use super::stats::{binomial_tail, rate_bound, robust_quantile, slow_samples_needed};
use super::window::{Aggregate, Counts, Sketch};
use super::*;
use crate::probe::{Phase, PhaseTimings, Reason, StepResult};

const T0: f64 = 1_700_000_000.0;
const MIN: f64 = 60.0;
const HOUR: f64 = 3600.0;
const TARGET: &str = "staging-agent";

/// A lognormal value around `median`: latency-shaped noise.
fn noisy(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn blank(success: bool) -> ProbeResult {
    ProbeResult {
        target: TARGET.to_owned(),
        success,
        reason: None,
        phase: None,
        step: None,
        message: None,
        http_status: None,
        close_code: None,
        duration_seconds: 0.0,
        phases: PhaseTimings::default(),
        steps: Vec::new(),
        messages_received: 0,
        messages_sent: 0,
        tls_cert_expiry: None,
        started_at: 0.0,
        message_gaps: Vec::new(),
    }
}

/// A successful probe: every phase timed, two steps; `handshake` is the handshake median.
fn healthy(rng: &mut StdRng, handshake: f64, sigma: f64) -> ProbeResult {
    let mut r = blank(true);
    r.http_status = Some(101);
    for (phase, median) in [
        (Phase::Dns, 0.002),
        (Phase::Connect, 0.010),
        (Phase::Tls, 0.030),
        (Phase::Handshake, handshake),
        (Phase::FirstMessage, 0.005),
        (Phase::Ping, 0.003),
        (Phase::Close, 0.002),
    ] {
        r.phases.set(phase, noisy(rng, median, sigma));
    }
    for (name, median) in [("welcome", 0.004), ("agent_completed", 4.0)] {
        r.steps.push(StepResult {
            name: name.to_owned(),
            ok: true,
            duration_seconds: noisy(rng, median, sigma),
        });
    }
    r
}

/// A probe that failed in `phase`, the phases before it timed.
fn failed(reason: Reason, phase: Phase, http_status: Option<u16>) -> ProbeResult {
    let mut r = blank(false);
    r.reason = Some(reason);
    r.phase = Some(phase);
    r.http_status = http_status;
    r.message = Some("from the server: must not reach an alert".to_owned());
    for p in Phase::ALL.into_iter().take_while(|p| *p != phase) {
        r.phases.set(p, 0.01);
    }
    r
}

/// Feeds a detector at a fixed interval and keeps every transition.
struct Run {
    detector: Detector,
    now: f64,
    log: Vec<Transition>,
}

impl Run {
    fn new() -> Self {
        Self::with(DetectorConfig::default())
    }

    fn with(config: DetectorConfig) -> Self {
        assert_eq!(config.validate("detector"), Vec::<String>::new());
        Self { detector: Detector::new(config), now: T0, log: Vec::new() }
    }

    /// Probes every `every` seconds for `duration` seconds, ticking in between.
    fn probe_for(&mut self, duration: f64, every: f64, mut make: impl FnMut(f64) -> ProbeResult) {
        let end = self.now + duration;
        while self.now < end {
            let r = make(self.now);
            self.log.extend(self.detector.observe(&r, self.now));
            self.log.extend(self.detector.tick(self.now + every / 2.0));
            self.now += every;
        }
    }

    fn transitions(&self, kind: AlertKind, to: AlertState) -> Vec<&Transition> {
        self.log.iter().filter(|t| t.alert.key.kind == kind && t.to == to).collect()
    }

    fn count(&self, to: AlertState) -> usize {
        self.log.iter().filter(|t| t.to == to).count()
    }
}

fn handshake() -> Option<Subject> {
    Some(Subject::Phase(Phase::Handshake))
}

#[test]
fn healthy_noisy_latency_never_alerts() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut run = Run::new();
    // 26 hours: the baseline fills, the first data ages out of it.
    run.probe_for(26.0 * HOUR, 30.0, |_| {
        let x: f64 = rng.random();
        if x < 0.002 {
            failed(Reason::ConnectionReset, Phase::FirstMessage, Some(101))
        } else if x < 0.004 {
            failed(Reason::HandshakeTimeout, Phase::Handshake, None)
        } else {
            let mut r = healthy(&mut rng, 0.1, 0.35);
            // Rare outliers, as from a pause on either side.
            if rng.random::<f64>() < 0.005 {
                r.phases.set(Phase::Handshake, 0.5);
            }
            r
        }
    });
    assert_eq!(run.count(AlertState::Firing), 0, "{:#?}", run.log);
    assert!(run.detector.alerts().iter().all(|a| a.state != AlertState::Firing));
}

#[test]
fn a_doubled_handshake_fires_after_for_and_resolves_after_recovery() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    assert!(run.log.is_empty(), "{:#?}", run.log);

    let regressed = run.now;
    run.probe_for(HOUR, 30.0, |_| healthy(&mut rng, 0.25, 0.1));
    let fired = run.transitions(AlertKind::LatencyRegression, AlertState::Firing);
    assert_eq!(fired.len(), 1, "{:#?}", run.log);
    let f = fired[0].clone();
    assert_eq!(f.alert.key.subject, handshake());
    // Pending once four slow samples are in (`min_slow_samples`), firing 3 minutes later.
    assert!(f.at >= regressed + 4.5 * MIN && f.at <= regressed + 6.0 * MIN, "{}", f.at - regressed);
    assert_eq!(f.alert.severity, Severity::Ticket);
    assert_eq!(f.alert.summary, "handshake of staging-agent is slower than usual");
    assert!(f.alert.description.starts_with("p95 handshake "), "{}", f.alert.description);
    assert!(
        f.alert.description.contains(" vs baseline ") && f.alert.description.contains("over the last 10m")
    );
    let m = f.alert.measurement.clone().unwrap();
    let ratio = m.value / m.baseline.unwrap();
    assert!((2.0..3.5).contains(&ratio), "{m:?}");
    assert!(m.samples >= 20 && m.baseline_samples > 300, "{m:?}");
    assert_eq!(
        f.alert.labels(),
        [
            ("alertname", "LatencyRegression".to_owned()),
            ("target", TARGET.to_owned()),
            ("severity", "ticket".to_owned()),
            ("phase", "handshake".to_owned()),
        ]
    );
    // Only the handshake regressed.
    assert!(run.log.iter().all(|t| t.alert.key.subject == handshake()), "{:#?}", run.log);
    assert_eq!(run.detector.alerts().len(), 1);

    // A lasting regression is not learned: still firing an hour in, against the old baseline.
    let baseline_now = run.detector.alerts()[0].measurement.clone().unwrap().baseline.unwrap();
    assert!((baseline_now - m.baseline.unwrap()).abs() < 0.01, "{baseline_now}");

    let recovered = run.now;
    run.probe_for(HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    let resolved = run.transitions(AlertKind::LatencyRegression, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "{:#?}", run.log);
    let r = resolved[0];
    // The slow samples leave the 10-11 minute window (all but two suffice), then 5 minutes
    // of hysteresis.
    assert!(r.at >= recovered + 13.0 * MIN && r.at <= recovered + 17.0 * MIN, "{}", r.at - recovered);
    assert_eq!(r.alert.resolved_at, Some(r.at));
    assert_eq!(r.alert.fired_at, Some(f.at));
    assert_eq!(run.count(AlertState::Firing), 1);
    assert!(run.detector.alerts().is_empty());
}

#[test]
fn a_lasting_regression_becomes_the_new_normal_after_one_baseline_window() {
    let mut rng = StdRng::seed_from_u64(31);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    let regressed = run.now;
    run.probe_for(28.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.3, 0.1));
    assert_eq!(run.count(AlertState::Firing), 1, "{:#?}", run.log);
    let resolved = run.transitions(AlertKind::LatencyRegression, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "{:#?}", run.log);
    // Not learned while firing, so the old baseline lasts until it ages out (26 h).
    let after = resolved[0].at - regressed;
    assert!((25.0 * HOUR..=27.5 * HOUR).contains(&after), "{}", after / HOUR);
    assert!(resolved[0].alert.description.starts_with("not enough samples"), "{:?}", resolved[0]);
}

#[test]
fn disabled_alerts_never_fire() {
    let mut config = DetectorConfig::default();
    config.probe_failing.enabled = false;
    let mut d = Detector::new(config);
    for i in 0..10 {
        assert!(d
            .observe(&failed(Reason::ConnectRefused, Phase::Connect, None), T0 + f64::from(i))
            .is_empty());
    }
}

#[test]
fn a_slow_single_minute_or_a_missing_baseline_does_not_fire() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut run = Run::new();
    // A new target that is slow from the start has no baseline to regress from.
    run.probe_for(20.0 * MIN, 30.0, |_| healthy(&mut rng, 1.0, 0.1));
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    // One slow minute: two probes at ten times the usual handshake.
    run.probe_for(MIN, 30.0, |_| healthy(&mut rng, 1.0, 0.1));
    run.probe_for(30.0 * MIN, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    assert!(run.log.is_empty(), "{:#?}", run.log);
}

#[test]
fn probe_failing_fires_at_the_third_failure_and_resolves_after_two_successes() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut d = Detector::new(DetectorConfig::default());
    let mut t = T0;
    let mut feed = |d: &mut Detector, r: ProbeResult| {
        t += 30.0;
        d.observe(&r, t)
    };
    let refused = || failed(Reason::HandshakeStatus, Phase::Handshake, Some(404));
    // Failures that are not consecutive do not count.
    for r in [refused(), refused(), healthy(&mut rng, 0.1, 0.1), refused(), refused()] {
        assert!(feed(&mut d, r).is_empty());
    }
    let fired = feed(&mut d, refused());
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let f = &fired[0];
    assert_eq!((f.from, f.to), (AlertState::Inactive, AlertState::Firing));
    assert_eq!(f.alert.key.kind, AlertKind::ProbeFailing);
    assert_eq!(f.alert.severity, Severity::Page);
    assert_eq!(f.alert.summary, "Probes of staging-agent are failing");
    assert_eq!(f.alert.description, "3 consecutive failures, last: handshake_status (HTTP 404) in handshake");
    assert!(f.notifies());

    assert!(feed(&mut d, failed(Reason::ExpectTimeout, Phase::Step, None)).is_empty());
    assert!(feed(&mut d, healthy(&mut rng, 0.1, 0.1)).is_empty());
    assert!(d.alerts()[0].description.starts_with("4 of the last 5 probes failed"), "{:?}", d.alerts());
    let resolved = feed(&mut d, healthy(&mut rng, 0.1, 0.1));
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!((resolved[0].from, resolved[0].to), (AlertState::Firing, AlertState::Resolved));
    assert_eq!(
        resolved[0].alert.description,
        "recovered: 2 consecutive successes after 4 of 6 probes failed, last failure: expect_timeout in step"
    );
    assert!(d.alerts().is_empty());
}

#[test]
fn step_failures_name_the_step_and_server_text_stays_out() {
    let mut d = Detector::new(DetectorConfig::default());
    let mut last = Vec::new();
    for i in 0..3 {
        let mut r = failed(Reason::ExpectTimeout, Phase::Step, Some(101));
        r.step = Some("agent_completed".to_owned());
        last = d.observe(&r, T0 + f64::from(i) * 30.0);
    }
    let a = &last[0].alert;
    assert_eq!(a.description, "3 consecutive failures, last: expect_timeout in step agent_completed");
    assert!(!format!("{a:?}").contains("from the server"));
}

#[test]
fn timeout_regression_fires_at_ten_percent_against_a_clean_baseline() {
    let mut rng = StdRng::seed_from_u64(13);
    let mut run = Run::new();
    // Every 10 s; a single timeout in three hours.
    let mut n = 0u32;
    run.probe_for(3.0 * HOUR, 10.0, |_| {
        n += 1;
        if n == 500 {
            failed(Reason::ConnectTimeout, Phase::Connect, None)
        } else {
            healthy(&mut rng, 0.1, 0.1)
        }
    });
    assert!(run.log.is_empty(), "{:#?}", run.log);

    let started = run.now;
    run.probe_for(HOUR, 10.0, |_| {
        n += 1;
        if n % 10 == 0 {
            failed(Reason::HandshakeTimeout, Phase::Handshake, None)
        } else {
            healthy(&mut rng, 0.1, 0.1)
        }
    });
    let fired = run.transitions(AlertKind::TimeoutRegression, AlertState::Firing);
    assert_eq!(fired.len(), 1, "{:#?}", run.log);
    let f = fired[0];
    // 4 timeouts in the 60 to 66 probes of the window make the 5 % margin, after 6.5 to 7
    // minutes (and are then a 1 in 17,000 chance); then 1 minute of `for`.
    assert!(f.at >= started + 7.0 * MIN && f.at <= started + 9.0 * MIN, "{}", f.at - started);
    assert_eq!(f.alert.summary, "Probes of staging-agent time out more often than usual");
    let m = f.alert.measurement.as_ref().unwrap();
    assert!((0.05..0.13).contains(&m.value), "{m:?}");
    assert!(m.baseline.unwrap() < 0.001, "{m:?}");
    assert!(m.events.unwrap() >= 4);
    assert!(f.alert.description.starts_with("timeouts "), "{}", f.alert.description);
    assert!(
        f.alert.description.contains("over the last 10m vs baseline 0.1% (1 of "),
        "{}",
        f.alert.description
    );
    assert!(f.alert.description.ends_with("last: handshake_timeout in handshake"), "{}", f.alert.description);
    // Isolated failures are no outage, and timed-out phases are no latency.
    assert_eq!(run.count(AlertState::Firing), 1, "{:#?}", run.log);

    let recovered = run.now;
    run.probe_for(HOUR, 10.0, |_| healthy(&mut rng, 0.1, 0.1));
    let resolved = run.transitions(AlertKind::TimeoutRegression, AlertState::Resolved);
    assert_eq!(resolved.len(), 1, "{:#?}", run.log);
    assert!(resolved[0].at <= recovered + 20.0 * MIN, "{}", resolved[0].at - recovered);
}

#[test]
fn timeouts_measured_on_few_probes_are_confirmed_not_lost() {
    // At the default 30 s interval the window holds about 20 probes, so 12 % timeouts are
    // 1 to 4 of them, straddling `min_timeouts` (3).
    let mut rng = StdRng::seed_from_u64(37);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    run.probe_for(HOUR, 30.0, |_| {
        if rng.random::<f64>() < 0.12 {
            failed(Reason::ExpectTimeout, Phase::Step, Some(101))
        } else {
            healthy(&mut rng, 0.1, 0.1)
        }
    });
    assert_eq!(run.transitions(AlertKind::TimeoutRegression, AlertState::Firing).len(), 1, "{:#?}", run.log);
    assert_eq!(run.count(AlertState::Resolved), 0, "{:#?}", run.log);
}

#[test]
fn a_level_flapping_around_the_threshold_fires_and_resolves_once() {
    let mut rng = StdRng::seed_from_u64(17);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    // Two hours alternating every 20 minutes between 1.8x the baseline (above `ratio`,
    // 1.5) and 1.35x (below it, above `resolve_ratio`, 1.25).
    for block in 0..6 {
        let level = if block % 2 == 0 { 0.18 } else { 0.135 };
        run.probe_for(20.0 * MIN, 30.0, |_| healthy(&mut rng, level, 0.05));
    }
    assert_eq!(run.transitions(AlertKind::LatencyRegression, AlertState::Firing).len(), 1, "{:#?}", run.log);
    assert!(run.transitions(AlertKind::LatencyRegression, AlertState::Resolved).is_empty(), "{:#?}", run.log);
    run.probe_for(HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    assert_eq!(run.transitions(AlertKind::LatencyRegression, AlertState::Resolved).len(), 1);

    // Just below the threshold for two hours: nothing at all.
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    run.probe_for(2.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.13, 0.05));
    assert!(run.log.is_empty(), "{:#?}", run.log);

    // Short slow spells around the threshold: at most one firing and one resolution.
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    for _ in 0..10 {
        run.probe_for(2.0 * MIN, 30.0, |_| healthy(&mut rng, 0.18, 0.05));
        run.probe_for(10.0 * MIN, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    }
    run.probe_for(HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.05));
    assert!(run.count(AlertState::Firing) <= 1, "{:#?}", run.log);
    assert_eq!(run.count(AlertState::Firing), run.count(AlertState::Resolved), "{:#?}", run.log);
}

#[test]
fn an_external_circuit_open_condition_waits_for_its_for() {
    let mut d = Detector::new(DetectorConfig::default());
    let pending = d.set_condition(TARGET, Signal::CircuitOpen, true, None, T0);
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].from, pending[0].to), (AlertState::Inactive, AlertState::Pending));
    assert!(!pending[0].notifies());
    assert!(d.tick(T0 + 30.0).is_empty());
    let fired = d.tick(T0 + 60.0);
    assert_eq!(fired.len(), 1);
    let a = &fired[0].alert;
    assert_eq!(
        (a.key.kind, a.state, a.severity),
        (AlertKind::CircuitOpen, AlertState::Firing, Severity::Page)
    );
    assert_eq!(a.summary, "The circuit to staging-agent is open");
    assert_eq!(a.active_since, T0);
    let resolved = d.set_condition(TARGET, Signal::CircuitOpen, false, None, T0 + 90.0);
    assert_eq!(resolved[0].to, AlertState::Resolved);

    // Closed again before `for`: back to inactive without a notification.
    let detail = "staging runs build 1.4.1, the pipeline deployed 1.4.2";
    let t = d.set_condition(TARGET, Signal::DeploymentDrift, true, Some(detail.to_owned()), T0 + 100.0);
    assert_eq!(t[0].alert.description, detail);
    let t = d.set_condition(TARGET, Signal::DeploymentDrift, false, None, T0 + 200.0);
    assert_eq!((t[0].from, t[0].to), (AlertState::Pending, AlertState::Inactive));
    assert!(!t[0].notifies());
    assert!(d.alerts().is_empty());
}

#[test]
fn snapshot_and_restore_round_trip_and_keep_detecting() {
    let mut rng = StdRng::seed_from_u64(19);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    run.probe_for(20.0 * MIN, 30.0, |_| healthy(&mut rng, 0.3, 0.1));
    run.detector.set_condition(TARGET, Signal::CircuitOpen, true, None, run.now);
    assert_eq!(run.detector.alerts().len(), 2);

    let json = serde_json::to_string(&run.detector.snapshot()).unwrap();
    let state: DetectorState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.version, STATE_VERSION);
    let mut restored = Detector::new(DetectorConfig::default());
    let report = restored.restore(state).unwrap();
    assert_eq!(report, RestoreReport { targets: 1, notes: Vec::new() });
    assert_eq!(restored.alerts(), run.detector.alerts());
    let again = serde_json::to_string(&restored.snapshot()).unwrap();
    if again != json {
        std::fs::write("/tmp/snap-a.json", &json).unwrap();
        std::fs::write("/tmp/snap-b.json", &again).unwrap();
    }
    assert!(again == json, "the restored state differs from the saved one");

    // Both go on identically: the regression resolves in both, at the same time.
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut t = run.now;
    for _ in 0..120 {
        let r = healthy(&mut rng, 0.1, 0.1);
        a.extend(run.detector.observe(&r, t));
        b.extend(restored.observe(&r, t));
        t += 30.0;
    }
    assert_eq!(a, b);
    assert!(a
        .iter()
        .any(|t| t.to == AlertState::Resolved && t.alert.key.kind == AlertKind::LatencyRegression));
}

#[test]
fn restore_tolerates_what_it_does_not_know() {
    let mut rng = StdRng::seed_from_u64(23);
    let mut d = Detector::new(DetectorConfig::default());
    for i in 0..10 {
        d.observe(&healthy(&mut rng, 0.1, 0.1), T0 + f64::from(i) * 30.0);
    }
    let mut state = serde_json::to_value(d.snapshot()).unwrap();
    let target = &mut state["targets"][0];
    target["name"] = "retired-target".into();
    let series = target["series"][0].clone();
    let mut unknown = series.clone();
    unknown["subject"] = "phase:teleport".into();
    target["series"].as_array_mut().unwrap().push(unknown);
    target["alerts"] = serde_json::json!([{
        "alertname": "FluxCapacitor", "subject": null,
        "lifecycle": { "life": { "state": "pending", "since": 1.0 }, "finding": {
            "summary": "", "description": "", "measurement": null } } }]);
    target["last_failure"] = serde_json::json!({
        "reason": "new_reason", "phase": "handshake", "step": null, "http_status": null });
    state["future_field"] = true.into();

    let mut restored = Detector::new(DetectorConfig::default());
    let report = restored.restore(serde_json::from_value(state.clone()).unwrap()).unwrap();
    assert_eq!(report.targets, 1);
    assert_eq!(
        report.notes,
        [
            "target retired-target: unknown series `phase:teleport` skipped",
            "target retired-target: unknown alert FluxCapacitor (-) skipped",
        ]
    );
    assert_eq!(restored.targets().collect::<Vec<_>>(), ["retired-target"]);
    assert!(restored.retain_targets(|name| name == TARGET, T0).is_empty());
    assert_eq!(restored.targets().count(), 0);

    // Other bucket widths: the data goes, the rest stays.
    let mut config = DetectorConfig::default();
    config.recent_bucket = crate::config::HumanDuration::from_secs(120);
    let mut other = Detector::new(config);
    let report = other.restore(serde_json::from_value(state.clone()).unwrap()).unwrap();
    assert!(report.notes[0].contains("their data was dropped"), "{report:?}");

    state["version"] = 99.into();
    let err = other.restore(serde_json::from_value(state).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "detector state version 99 is not supported (this build reads version 1)");
}

#[test]
fn dropping_a_target_resolves_its_firing_alerts() {
    let mut d = Detector::new(DetectorConfig::default());
    for i in 0..3 {
        d.observe(&failed(Reason::ConnectRefused, Phase::Connect, None), T0 + f64::from(i));
    }
    assert_eq!(d.alerts().len(), 1);
    let t = d.retain_targets(|_| false, T0 + 10.0);
    assert_eq!((t[0].from, t[0].to), (AlertState::Firing, AlertState::Resolved));
    assert_eq!(t[0].alert.description, "staging-agent is no longer monitored");
    assert!(d.alerts().is_empty());
}

#[test]
fn memory_stays_within_the_stated_bound() {
    let mut rng = StdRng::seed_from_u64(29);
    let mut run = Run::new();
    run.probe_for(27.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.5));
    let layout = run.detector.config().layout();
    let target = &run.detector.targets[TARGET];
    // 7 phases and 2 steps.
    assert_eq!(target.timings.len(), 9);
    for w in target.timings.values() {
        assert!(w.recent.len() + w.baseline.len() <= layout.max_buckets());
    }
    assert_eq!(layout.max_buckets(), 40);
}

#[test]
fn few_samples_need_several_slow_ones_for_a_high_quantile() {
    let sketch = |slow: usize| {
        let mut s = Sketch::empty();
        for i in 0..20 {
            s.add(if i < slow { 1.0 } else { 0.1 });
        }
        s
    };
    let q = |slow| {
        let s = sketch(slow);
        s.quantile(robust_quantile(0.95, s.count(), 3)).unwrap()
    };
    assert!(q(2) < 0.11);
    assert!(q(3) > 0.99);
    // Enough samples: the plain quantile.
    assert_eq!(robust_quantile(0.95, 1000, 3), 0.95);
}

#[test]
fn binomial_tails_and_chances_read_right() {
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-9;
    // Reference values from exact sums.
    assert!(close(binomial_tail(21, 3, 0.0025), 2.009_167_463_230_471_6e-5));
    assert!(close(binomial_tail(20, 2, 0.1), 0.608_253_001_874_832_7));
    assert!(close(binomial_tail(600, 5, 0.001), 3.894_643_934_549_589e-4));
    assert!(close(binomial_tail(20, 20, 0.5), 9.536_743_164_062_5e-7));
    assert_eq!(binomial_tail(20, 0, 0.1), 1.0);
    assert_eq!(binomial_tail(20, 21, 0.1), 0.0);
    assert_eq!(binomial_tail(20, 3, 0.0), 0.0);
    assert_eq!(fmt_chance(2.009e-5), "1 in 50,000");
    assert_eq!(fmt_chance(8.56e-5), "1 in 12,000");
    assert_eq!(fmt_chance(0.003), "1 in 330");
    assert_eq!(fmt_chance(0.608), "61%");
    // The example in README.md and ALERTS.md: 3 of 22 against 6 of 3118.
    let base = Counts { probes: 3118, timeouts: 6 };
    assert_eq!(fmt_chance(binomial_tail(22, 3, rate_bound(base))), "1 in 23,000");
    assert_eq!(
        [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).join(" "),
        "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 101st"
    );
}

#[test]
fn two_timeouts_fire_only_against_a_long_clean_baseline() {
    let two_timeouts_after = |history: f64| {
        let mut rng = StdRng::seed_from_u64(41);
        let mut run = Run::new();
        run.probe_for(history, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
        let mut n = 0;
        run.probe_for(30.0 * MIN, 30.0, |_| {
            n += 1;
            if n == 2 || n == 4 {
                failed(Reason::HandshakeTimeout, Phase::Handshake, None)
            } else {
                healthy(&mut rng, 0.1, 0.1)
            }
        });
        run
    };
    // Three clean hours (360 probes) do not rule out a rate of 1 in 180, at which two
    // timeouts in 20 probes are a 1 in 160 chance: not enough.
    let young = two_timeouts_after(3.0 * HOUR);
    assert!(young.log.is_empty(), "{:#?}", young.log);
    // 26 clean hours (3120 probes) bound the rate at 1 in 1560: now a 1 in 12,000 chance.
    let mature = two_timeouts_after(26.0 * HOUR);
    let fired = mature.transitions(AlertKind::TimeoutRegression, AlertState::Firing);
    assert_eq!(fired.len(), 1, "{:#?}", mature.log);
    let d = &fired[0].alert.description;
    assert!(d.contains("(2 of ") && d.contains("vs baseline 0% (0 of 31"), "{d}");
    assert!(
        d.contains(", 1 in 1") && d.contains(",000 by chance at the baseline rate, last: handshake_timeout"),
        "{d}"
    );
}

#[test]
fn a_daily_rhythm_is_compared_with_the_same_time_yesterday() {
    // Handshake latency swings ± 40 % over the day, highest at the start of the run; after
    // 36 hours, at the daily low, it jumps to 1.7 times the usual there, which is still
    // faster than the usual daily high.
    let run_with = |baseline: LatencyBaseline| {
        let mut config = DetectorConfig::default();
        config.latency.baseline = baseline;
        let mut run = Run::with(config);
        let mut rng = StdRng::seed_from_u64(43);
        let daily = |t: f64| 1.0 + 0.4 * (std::f64::consts::TAU * (t - T0) / (24.0 * HOUR)).cos();
        run.probe_for(36.0 * HOUR, 30.0, |t| healthy(&mut rng, 0.1 * daily(t), 0.1));
        assert!(run.log.is_empty(), "{baseline:?}: {:#?}", run.log);
        let step = run.now;
        run.probe_for(HOUR, 30.0, |t| healthy(&mut rng, 0.1 * daily(t) * 1.7, 0.1));
        (run, step)
    };
    let (run, step) = run_with(LatencyBaseline::TimeOfDay);
    let fired = run.transitions(AlertKind::LatencyRegression, AlertState::Firing);
    assert_eq!(fired.len(), 1, "{:#?}", run.log);
    assert_eq!(fired[0].alert.key.subject, handshake());
    assert!(fired[0].at - step <= 10.0 * MIN, "{}", fired[0].at - step);
    assert!(
        fired[0].alert.description.ends_with("samples around this time yesterday"),
        "{}",
        fired[0].alert.description
    );

    // Against the whole day pooled, the low's regression hides under the high's latencies.
    let (run, _) = run_with(LatencyBaseline::Window);
    assert!(run.log.is_empty(), "{:#?}", run.log);
}

#[test]
fn a_shorter_interval_needs_more_slow_samples() {
    assert_eq!([10, 20, 39, 40, 59, 60, 120].map(|n| slow_samples_needed(4, n)), [4, 4, 4, 5, 5, 6, 9]);
    // Every 15 s: about 40 samples in the window. Four probes at 4x the usual handshake
    // within five minutes are a chance the window gives outliers; five are not.
    let slow_spell = |slow: usize| {
        let mut rng = StdRng::seed_from_u64(47);
        let mut run = Run::new();
        run.probe_for(3.0 * HOUR, 15.0, |_| healthy(&mut rng, 0.1, 0.1));
        let mut n = 0;
        run.probe_for(20.0 * MIN, 15.0, |_| {
            n += 1;
            let mut r = healthy(&mut rng, 0.1, 0.1);
            if n % 4 == 0 && n / 4 <= slow {
                r.phases.set(Phase::Handshake, 0.4);
            }
            r
        });
        run
    };
    let four = slow_spell(4);
    assert!(four.log.is_empty(), "{:#?}", four.log);
    let five = slow_spell(5);
    let fired = five.transitions(AlertKind::LatencyRegression, AlertState::Firing);
    assert_eq!(fired.len(), 1, "{:#?}", five.log);
    assert!(
        fired[0].alert.description.contains("(the 5th slowest: too few for a plain p95)"),
        "{:?}",
        fired[0]
    );
}
