//! TimeoutRegression: timeout rates against clean and noisy baselines.

use super::*;

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
