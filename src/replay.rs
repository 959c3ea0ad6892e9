//! `wsprobe replay`: a recorded (or generated) trace through the same detector the daemon
//! runs, with simulated time, printing every alert transition.
//!
//! Each line of the trace is a probe result in the JSON shape of `wsprobe once` plus
//! `"ts"` (Unix seconds), as `wsprobe run --record` writes, or an event of a held session
//! (`{"ts": …, "target": …, "session": {"event": "disconnect", …}}`, see
//! [`SessionEvent`]), which feeds the session rules. Between two results the
//! detector is ticked every second, as the live engine is, so `for` durations and
//! resolves happen at the same moments they would have live.

use std::io::BufRead;

use crate::detect::{Detector, DetectorConfig, SessionEvent, Transition};
use crate::probe::ProbeResult;

/// The live engine's tick.
const TICK: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("cannot read the trace: {0}")]
    Io(#[from] std::io::Error),
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub results: usize,
    /// Session events fed, besides the results.
    pub session_events: usize,
    pub transitions: Vec<Transition>,
}

/// One line of a trace.
#[derive(Debug)]
pub(crate) enum Entry {
    Result(Box<ProbeResult>),
    Session { target: String, event: SessionEvent },
}

/// Parses one trace line into its time and entry.
pub(crate) fn parse_line(text: &str) -> Result<(f64, Entry), String> {
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ts = value.get("ts").and_then(serde_json::Value::as_f64).ok_or("no numeric `ts` (Unix seconds)")?;
    if let Some(session) = value.get_mut("session").map(serde_json::Value::take) {
        let target = value.get("target").and_then(serde_json::Value::as_str).ok_or("no `target` name")?;
        let event: SessionEvent =
            serde_json::from_value(session).map_err(|e| format!("not a session event: {e}"))?;
        return Ok((ts, Entry::Session { target: target.to_owned(), event }));
    }
    let result: ProbeResult =
        serde_json::from_value(value).map_err(|e| format!("not a probe result: {e}"))?;
    Ok((ts, Entry::Result(Box::new(result))))
}

/// Feeds `trace` through a detector configured by `config`.
pub fn replay(config: &DetectorConfig, trace: impl BufRead) -> Result<Replay, ReplayError> {
    let mut detector = Detector::new(config.clone());
    let mut out = Replay::default();
    let mut clock: Option<f64> = None;
    for (i, line) in trace.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (ts, entry) = parse_line(&line).map_err(|why| ReplayError::Line { line: i + 1, why })?;
        if let Some(mut t) = clock {
            while t + TICK < ts {
                t += TICK;
                out.transitions.extend(detector.tick(t));
            }
        }
        clock = Some(clock.map_or(ts, |c| c.max(ts)));
        match entry {
            Entry::Result(result) => {
                out.transitions.extend(detector.observe(&result, ts));
                out.results += 1;
            }
            Entry::Session { target, event } => {
                out.transitions.extend(detector.observe_session(&target, &event, ts));
                out.session_events += 1;
            }
        }
    }
    Ok(out)
}
