//! What the detector learns from a target's held sessions (`session:` targets): the events
//! the session holders report, and the windows they fill.
//!
//! A session target's connects are probe results like any other ([`Detector::observe`]);
//! what happens while a session is held arrives as [`SessionEvent`]s through
//! [`Detector::observe_session`]: each disconnect with its reason and lifetime, the number
//! of sessions open against the number configured, and each ping and heartbeat round trip.
//!
//! Disconnects are compared as a rate per session-hour held, not per hour of clock: a
//! target holding ten sessions sees ten times the disconnects of one holding one, and a
//! target whose sessions are all down for a while holds none and so can drop none. The
//! time held is integrated from the open count at every call (the live engine ticks every
//! second), into a window of its own that rolls and learns with the lifetimes.
//!
//! [`Detector::observe`]: super::Detector::observe
//! [`Detector::observe_session`]: super::Detector::observe_session

use serde::{Deserialize, Serialize};

use super::window::{Aggregate, Layout, Sketch, Windowed};
use crate::probe::Reason;

/// Something a held session did, as the session holders report it and the record file
/// keeps it (`{"ts": …, "target": …, "session": {"event": "disconnect", …}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionEvent {
    /// A held session ended by failure (polite `max_lifetime` closes are not disconnects).
    Disconnect {
        reason: Reason,
        /// How long the session had been open.
        lifetime_seconds: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        close_code: Option<u16>,
    },
    /// How many sessions of the target are open now, and how many are configured (`count`).
    Open { open: u32, configured: u32 },
    /// A protocol ping answered after this many seconds.
    PingRtt { seconds: f64 },
    /// An application heartbeat answered after this many seconds.
    HeartbeatRtt { seconds: f64 },
}

impl SessionEvent {
    /// Whether the event can change a condition at once (and so is evaluated on arrival).
    /// Round trips arrive once per session and ping interval, thousands a minute on a big
    /// target; they are only recorded, and their rules evaluated at the next tick.
    pub(crate) fn evaluates(&self) -> bool {
        matches!(self, SessionEvent::Disconnect { .. } | SessionEvent::Open { .. })
    }
}

/// Session-seconds held: the exposure disconnects are counted against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub(crate) session_seconds: f64,
}

impl Aggregate for Held {
    fn empty() -> Self {
        Self::default()
    }

    fn merge(&mut self, other: &Self) {
        self.session_seconds += other.session_seconds;
    }
}

/// The last disconnect, in label-safe terms, for the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastDisconnect {
    pub(crate) reason: Reason,
    pub(crate) close_code: Option<u16>,
}

/// What the detector keeps about a target's sessions; empty for a target without any.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SessionState {
    /// Lifetimes of disconnected sessions: their count is the disconnect count.
    #[serde(default)]
    pub(crate) lifetimes: Windowed<Sketch>,
    /// Session-seconds held.
    #[serde(default)]
    pub(crate) held: Windowed<Held>,
    #[serde(default)]
    pub(crate) ping_rtt: Windowed<Sketch>,
    #[serde(default)]
    pub(crate) heartbeat_rtt: Windowed<Sketch>,
    /// The latest open and configured counts; `None` until the first report.
    #[serde(default)]
    pub(crate) counts: Option<(u32, u32)>,
    /// Up to when held time has been credited.
    #[serde(default)]
    pub(crate) credited_to: Option<f64>,
    #[serde(default)]
    pub(crate) last_disconnect: Option<LastDisconnect>,
}

/// Which windows may learn (no alert on them is active).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Learn {
    pub(crate) disconnects: bool,
    pub(crate) ping_rtt: bool,
    pub(crate) heartbeat_rtt: bool,
}

impl SessionState {
    /// Whether the target reported anything about sessions that is still kept.
    pub(crate) fn is_session_target(&self) -> bool {
        self.counts.is_some()
            || !self.lifetimes.is_empty()
            || !self.held.is_empty()
            || !self.ping_rtt.is_empty()
            || !self.heartbeat_rtt.is_empty()
    }

    /// Credits the time held since the last call at the last known open count.
    fn credit(&mut self, layout: &Layout, now: f64) {
        let Some((open, _)) = self.counts else { return };
        if let Some(from) = self.credited_to {
            let dt = now - from;
            if open > 0 && dt > 0.0 {
                let add = f64::from(open) * dt;
                self.held.record(layout, now, |h| h.session_seconds += add);
            }
        }
        // Time that runs backwards is not credited twice.
        self.credited_to = Some(self.credited_to.map_or(now, |c| c.max(now)));
    }

    /// Credits held time and moves data through the windows.
    pub(crate) fn roll(&mut self, layout: &Layout, now: f64, learn: Learn) {
        if !self.is_session_target() {
            // Not a session target: nothing to do on every tick.
            return;
        }
        self.credit(layout, now);
        self.lifetimes.roll(layout, now, learn.disconnects);
        self.held.roll(layout, now, learn.disconnects);
        self.ping_rtt.roll(layout, now, learn.ping_rtt);
        self.heartbeat_rtt.roll(layout, now, learn.heartbeat_rtt);
    }

    /// Takes one event into account; call [`SessionState::roll`] first.
    pub(crate) fn record(&mut self, event: &SessionEvent, layout: &Layout, now: f64) {
        let usable = |s: f64| s.is_finite() && s >= 0.0;
        match *event {
            SessionEvent::Disconnect { reason, lifetime_seconds, close_code } => {
                let lifetime = if usable(lifetime_seconds) { lifetime_seconds } else { 0.0 };
                self.lifetimes.record(layout, now, |s| s.add(lifetime));
                self.last_disconnect = Some(LastDisconnect { reason, close_code });
            }
            SessionEvent::Open { open, configured } => {
                // Held time up to now was credited at the old count by `roll`.
                self.credited_to.get_or_insert(now);
                self.counts = Some((open, configured));
            }
            SessionEvent::PingRtt { seconds } if usable(seconds) => {
                self.ping_rtt.record(layout, now, |s| s.add(seconds));
            }
            SessionEvent::HeartbeatRtt { seconds } if usable(seconds) => {
                self.heartbeat_rtt.record(layout, now, |s| s.add(seconds));
            }
            SessionEvent::PingRtt { .. } | SessionEvent::HeartbeatRtt { .. } => {}
        }
    }

    /// Restores order and drops unreadable buckets of data read from a file; how many.
    pub(crate) fn sanitize(&mut self) -> usize {
        self.lifetimes.sanitize(Sketch::is_compatible)
            + self.held.sanitize(|h| h.session_seconds.is_finite() && h.session_seconds >= 0.0)
            + self.ping_rtt.sanitize(Sketch::is_compatible)
            + self.heartbeat_rtt.sanitize(Sketch::is_compatible)
    }
}
