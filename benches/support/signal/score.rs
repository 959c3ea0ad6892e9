//! Scoring one replay: the detector's transitions on a trace against the alert its
//! incident should raise — detection delay, re-fires, resolve delay and false alarms.

use wsprobe::detect::{AlertKind, AlertState, Subject, Transition};
use wsprobe::probe::Phase;

use crate::fmt_dur;
use crate::scenarios::{Incident, Scenario, WARMUP};
use crate::trace::Trace;

/// What one replay of one trace found.
#[derive(Debug, Default, Clone)]
pub struct Score {
    /// Expected alert's first firing at or after the incident's first probe, from there.
    pub delay: Option<f64>,
    /// Probes of the incident the detector had seen when the expected alert first fired.
    pub probes_to_fire: Option<usize>,
    /// Slow creep: the handshake factor when it fired.
    pub factor_at_fire: Option<f64>,
    /// Further firings of the expected alert in the incident and its tail.
    pub refires: usize,
    /// Expected alert's resolve after its last firing, from the first probe after the
    /// incident; negative when it resolved during the incident.
    pub resolve: Option<f64>,
    /// Whether the expected alert fired and never resolved.
    pub unresolved: bool,
    /// Other alerts that fired in the incident and its tail (all alerts, for `healthy`).
    pub others: Vec<String>,
    /// Alerts that fired during the warm-up.
    pub warmup: Vec<String>,
    /// For alerts that should not have fired: seed, time into the trace, description.
    pub false_alarms: Vec<String>,
    /// Alerts that went pending and back to inactive without firing, after the warm-up.
    pub silent_pendings: usize,
    /// The diurnal latency factor when the incident started.
    pub diurnal_at_start: f64,
    /// Timeout incidents: when the incident's 2nd and 3rd timeouts were seen, from its
    /// first probe.
    pub nth_timeout: [Option<f64>; 2],
    /// Timeout incidents: from the 3rd timeout to the expected alert firing.
    pub after_third: Option<f64>,
}

fn alert_name(t: &Transition) -> String {
    match &t.alert.key.subject {
        Some(s) => {
            let (k, v) = s.label();
            format!("{}{{{k}={v}}}", t.alert.key.kind)
        }
        None => t.alert.key.kind.to_string(),
    }
}

fn is_expected(t: &Transition, expected: Option<(AlertKind, Option<Phase>)>) -> bool {
    expected.is_some_and(|(kind, phase)| {
        t.alert.key.kind == kind && t.alert.key.subject == phase.map(Subject::Phase)
    })
}

pub fn score(scenario: &Scenario, seed: u64, trace: &Trace, transitions: &[Transition]) -> Score {
    let mut s = Score { diurnal_at_start: trace.diurnal_at_start, ..Score::default() };
    if let Incident::Timeouts(_) = scenario.incident {
        let nth = |n: usize| trace.incident_timeouts.get(n - 1).map(|end| end - trace.first_in);
        s.nth_timeout = [nth(2), nth(3)];
    }
    let mut last_fire: Option<f64> = None;
    for t in transitions {
        let expected = is_expected(t, scenario.expected);
        let explain = |t: &Transition| {
            let since = t.at - (trace.start - WARMUP);
            format!("seed {seed} at +{}: {} — {}", fmt_dur(since), alert_name(t), t.alert.description)
        };
        if t.at < trace.start {
            if t.to == AlertState::Firing {
                s.warmup.push(alert_name(t));
                s.false_alarms.push(explain(t));
            }
            continue;
        }
        match t.to {
            AlertState::Firing if expected => {
                if s.delay.is_none() {
                    s.delay = Some(t.at - trace.first_in);
                    s.after_third = trace.incident_timeouts.get(2).map(|third| t.at - third);
                    // Trace lines carry `ts` rounded to the millisecond.
                    let seen = trace.first_ends.iter().filter(|&&end| end <= t.at + 0.0005).count();
                    s.probes_to_fire = Some(seen);
                    if let Incident::Creep(to) = scenario.incident {
                        let progress = ((t.at - trace.start) / scenario.duration).clamp(0.0, 1.0);
                        s.factor_at_fire = Some(1.0 + (to - 1.0) * progress);
                    }
                } else {
                    s.refires += 1;
                }
                last_fire = Some(t.at);
            }
            AlertState::Firing => {
                s.others.push(alert_name(t));
                s.false_alarms.push(explain(t));
            }
            AlertState::Inactive if t.from == AlertState::Pending => s.silent_pendings += 1,
            AlertState::Resolved if expected && last_fire.is_some() => {
                s.resolve = Some(t.at - trace.first_after);
            }
            _ => {}
        }
    }
    // A resolve that came before the last firing does not count.
    if let (Some(fire), Some(resolve)) = (last_fire, s.resolve) {
        if resolve + trace.first_after < fire {
            s.resolve = None;
        }
    }
    s.unresolved = last_fire.is_some() && s.resolve.is_none();
    s
}
