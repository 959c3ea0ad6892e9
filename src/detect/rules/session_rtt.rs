//! SessionPingRTTRegression and SessionHeartbeatRTTRegression: round trips on held
//! sessions (protocol pings, application heartbeats) slower than their baseline. The
//! condition is the latency rule's, with its own settings (`session_rtt`, shared by both).

use super::latency::latency;
use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Subject};
use crate::detect::target::TargetState;

/// Which round trip a rule watches.
#[derive(Clone, Copy)]
pub(crate) enum RoundTrip {
    Ping,
    Heartbeat,
}

pub(crate) struct SessionRttRegression(pub(crate) RoundTrip);

impl RoundTrip {
    /// The words the latency rule writes in place of a phase name.
    fn words(self) -> &'static str {
        match self {
            RoundTrip::Ping => "session ping round trip",
            RoundTrip::Heartbeat => "session heartbeat round trip",
        }
    }
}

impl Rule for SessionRttRegression {
    fn kind(&self) -> AlertKind {
        match self.0 {
            RoundTrip::Ping => AlertKind::SessionPingRTTRegression,
            RoundTrip::Heartbeat => AlertKind::SessionHeartbeatRTTRegression,
        }
    }

    /// Targets with round trips, and an alert that outlived them.
    fn subjects(&self, target: &TargetState) -> Vec<Option<Subject>> {
        let s = &target.sessions;
        let series = match self.0 {
            RoundTrip::Ping => &s.ping_rtt,
            RoundTrip::Heartbeat => &s.heartbeat_rtt,
        };
        target.whole_target_if(!series.is_empty(), self.kind())
    }

    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        active: bool,
    ) -> Check<'a> {
        let s = &mut target.sessions;
        let series = match self.0 {
            RoundTrip::Ping => &mut s.ping_rtt,
            RoundTrip::Heartbeat => &mut s.heartbeat_rtt,
        };
        let series = (!series.is_empty()).then_some(series);
        latency(cx.name, self.0.words(), series, active, &cx.config.session_rtt, cx.layout, cx.now)
    }
}
