//! LatencyRegression: regressions found and resolved, noise, daily rhythms and few samples left alone.

use super::super::stats::slow_samples_needed;
use super::*;

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
