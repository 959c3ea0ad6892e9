//! Holding one open session: pings, the heartbeat, silence, the maximum lifetime.
//!
//! One loop per session and no timer of its own: each turn reads the socket until the
//! earliest thing due (the next ping, the next heartbeat or its answer's deadline, the end
//! of the session's lifetime), so an idle session costs one wake per ping interval.
//! Silence is the session's own bound (`stale_after`, set by [`Session::hold_open`]): it
//! ends the session as `stalled`. A protocol ping left unanswered does not end it by
//! itself; the pongs that do come are timed, and a server that stops answering them goes
//! silent and is caught by `stale_after`. Every message still passes the target's
//! `fail_on` and `respond` rules inside [`Session::next_event`].

use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Bytes;

use super::metrics::Series;
use super::report::Reporter;
use super::settings::SessionSettings;
use super::status::Slot;
use crate::detect::SessionEvent;
use crate::probe::session::{Event, Session, Wait};
use crate::probe::{ProbeError, Reason, Stop};
use crate::util::matcher::Received;
use crate::util::time::{deadline, fmt_duration};

/// Why holding stopped.
#[derive(Debug)]
pub enum End {
    /// Shutdown, reload or resize: the session is to be closed with 1001.
    Cancelled,
    /// `max_lifetime` passed: close politely (1000) and reopen, not a disconnect.
    Lifetime,
    /// The caller's own limit passed (`wsprobe once`).
    Until,
    /// The session failed: a disconnect with this reason.
    Failed(ProbeError),
}

/// Where a held session reports what it sees.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// `None` for `wsprobe once`, which exports no metrics.
    pub series: Option<&'a Series>,
    pub slot: &'a Slot,
    /// Round trips for the alert engine and the record file; `None` for `wsprobe once`.
    pub report: Option<&'a Reporter>,
}

/// Holds `session` until it fails, its lifetime ends, `until` passes or its cancellation
/// token fires. `send_timeout` bounds each frame we send (a ping, a heartbeat).
pub async fn hold(
    session: &mut Session,
    settings: &SessionSettings,
    send_timeout: Duration,
    until: Option<Instant>,
    live: Live<'_>,
) -> End {
    session.hold_open(settings.stale_after);
    let opened = Instant::now();
    let lifetime_end = settings.max_lifetime.map(|d| deadline(opened, d));
    let mut next_ping = deadline(opened, settings.ping_interval);
    // The payload of the ping in flight and when it left; a newer ping replaces it.
    let mut ping: Option<(Bytes, Instant)> = None;
    let mut counter: u64 = 0;
    let heartbeat = settings.heartbeat.as_ref();
    let mut next_beat = heartbeat.map(|h| deadline(opened, h.every));
    // When the heartbeat in flight left, and by when it must be answered.
    let mut beat: Option<(Instant, Instant)> = None;
    let mut seen = session.received;
    loop {
        let now = Instant::now();
        let wake = [Some(next_ping), next_beat, beat.map(|b| b.1), lifetime_end, until]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_ping);
        let wait = Wait {
            started: now,
            deadline: wake,
            timeout: wake.saturating_duration_since(now),
            max_gap: None,
        };
        match session.next_event(&wait).await {
            Err(Stop::Cancelled) => return End::Cancelled,
            Err(Stop::Failed(e)) => return End::Failed(stale_message(e, settings.stale_after)),
            Ok(Some(Event::Pong(payload))) => {
                if let Some((_, sent)) = ping.take_if(|(p, _)| *p == payload) {
                    let rtt = sent.elapsed().as_secs_f64();
                    if let Some(m) = live.series {
                        m.ping_rtt.observe(rtt);
                    }
                    live.slot.rtt(rtt);
                    if let Some(r) = live.report {
                        r.report(SessionEvent::PingRtt { seconds: rtt });
                    }
                }
            }
            Ok(Some(Event::Data(msg))) => {
                if let (Some(h), Some((sent, _))) = (heartbeat, beat) {
                    if h.expect.matches(&Received::of(&msg)) {
                        let rtt = sent.elapsed().as_secs_f64();
                        if let Some(m) = live.series {
                            m.heartbeat_rtt.observe(rtt);
                        }
                        live.slot.heartbeat_rtt(rtt);
                        if let Some(r) = live.report {
                            r.report(SessionEvent::HeartbeatRtt { seconds: rtt });
                        }
                        beat = None;
                    }
                }
            }
            Ok(None) => {}
        }
        if session.received != seen {
            if let Some(m) = live.series {
                m.messages.inc_by(session.received - seen);
            }
            seen = session.received;
            live.slot.message();
        }
        for gap in session.gaps.drain(..) {
            if let Some(m) = live.series {
                m.gaps.observe(gap);
            }
        }

        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            return End::Until;
        }
        if lifetime_end.is_some_and(|l| now >= l) {
            return End::Lifetime;
        }
        if let (Some(h), Some((_, due))) = (heartbeat, beat) {
            if now >= due {
                let message = format!("no heartbeat answer within {}", fmt_duration(h.within));
                return End::Failed(ProbeError::new(Reason::HeartbeatTimeout, message));
            }
        }
        if let (Some(h), Some(at)) = (heartbeat, next_beat) {
            if now >= at {
                let msg = match h.send.render(&session.vars, &mut session.secrets) {
                    Ok(msg) => msg,
                    Err(e) => {
                        let message = format!("cannot build the heartbeat: {e}");
                        return End::Failed(ProbeError::new(Reason::SendError, message));
                    }
                };
                if let Err(stop) = session.send(msg, &Wait::new(send_timeout)).await {
                    return ended(stop);
                }
                let sent = Instant::now();
                beat = Some((sent, deadline(sent, h.within)));
                next_beat = Some(deadline(sent, h.every));
            }
        }
        if now >= next_ping {
            counter = counter.wrapping_add(1);
            let payload = Bytes::from(counter.to_be_bytes().to_vec());
            if let Err(stop) = session.send_ping(payload.clone(), &Wait::new(send_timeout)).await {
                return ended(stop);
            }
            let sent = Instant::now();
            ping = Some((payload, sent));
            next_ping = deadline(sent, settings.ping_interval);
        }
    }
}

fn ended(stop: Stop) -> End {
    match stop {
        Stop::Cancelled => End::Cancelled,
        Stop::Failed(e) => End::Failed(e),
    }
}

/// The session's silence bound is `stale_after`; say so rather than `timeouts.idle`.
fn stale_message(mut e: ProbeError, stale_after: Duration) -> ProbeError {
    if e.reason == Reason::Stalled {
        e.message = format!("nothing received for {} (stale_after)", fmt_duration(stale_after));
    }
    e
}
