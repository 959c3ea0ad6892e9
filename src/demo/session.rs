//! `/session`: the demo's endpoint for held sessions, and the cut cycle it runs.
//!
//! A session gets the welcome, answers protocol pings (tungstenite does so while it
//! reads), answers the application heartbeat `{"type":"ping"}` with `{"type":"pong"}`,
//! and confirms a `{"type":"subscribe"}` with `{"type":"subscribed"}`. The service then
//! behaves like a load balancer whose idle cut is switched on for a stretch of every
//! cycle: during the held stretch sessions stay open; during the cut stretch every session
//! older than [`LIFETIME_TICKS`] is cut, alternately with close code 1001 (going away)
//! and by dropping the connection without a close frame, so the daemon sees both
//! `unexpected_close` and `connection_reset` disconnects with short lifetimes, then the
//! sessions reconnect and are held again.
//!
//! Unlike `/flaky` the cycle is in time, not in connections: it is counted in ticks of
//! the demo's `--interval`, so a faster demo runs the same cycle faster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::stream::{Error, WELCOME};

/// Ticks of the cycle during which sessions are held.
pub(crate) const HELD_TICKS: u32 = 10;
/// Ticks of the cycle during which sessions are cut.
pub(crate) const CUT_TICKS: u32 = 4;
/// How old a session must be to be cut during the cut stretch.
pub(crate) const LIFETIME_TICKS: u32 = 1;

/// The shortest tick: a zero `--interval` (refused by the configuration later) must not
/// make the cycle empty.
const MIN_TICK: Duration = Duration::from_millis(1);

/// The cut cycle, shared by every `/session` connection.
#[derive(Debug)]
pub(crate) struct Cycle {
    started: Instant,
    tick: Duration,
    cuts: AtomicU64,
}

/// How a session is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// A close frame with 1001 (going away), as a proxy that ends idle connections.
    GoingAway,
    /// The connection dropped without a close frame.
    Reset,
}

impl Cycle {
    /// A cycle starting now, in ticks of `tick` (the demo's interval).
    pub(crate) fn new(tick: Duration) -> Self {
        Self { started: Instant::now(), tick: tick.max(MIN_TICK), cuts: AtomicU64::new(0) }
    }

    /// When a session opened at `opened` (since the cycle started) is cut: the first
    /// moment at least [`LIFETIME_TICKS`] after it opened that falls in a cut stretch.
    pub(crate) fn cut_at(&self, opened: Duration) -> Duration {
        let tick = self.tick.as_nanos();
        let period = tick * u128::from(HELD_TICKS + CUT_TICKS);
        let held = tick * u128::from(HELD_TICKS);
        let due = opened.as_nanos().saturating_add(tick * u128::from(LIFETIME_TICKS));
        let phase = due % period;
        let at = if phase >= held { due } else { due - phase + held };
        Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
    }

    /// How the next cut is made: 1001 and resets alternate.
    fn next_cut(&self) -> Cut {
        if self.cuts.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            Cut::GoingAway
        } else {
            Cut::Reset
        }
    }
}

/// Serves one `/session` connection until the client leaves or the cycle cuts it.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    cycle: &Cycle,
) -> Result<(), Error> {
    let cut = cycle.started + cycle.cut_at(cycle.started.elapsed());
    ws.send(Message::text(WELCOME)).await?;
    loop {
        let msg = tokio::select! {
            () = tokio::time::sleep_until(cut) => break,
            msg = ws.next() => msg,
        };
        let Some(msg) = msg else { return Ok(()) };
        let Message::Text(text) = msg? else { continue };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        match value.get("type").and_then(|t| t.as_str()) {
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            Some("subscribe") => ws.send(Message::text(r#"{"type":"subscribed"}"#)).await?,
            _ => {}
        }
    }
    match cycle.next_cut() {
        Cut::GoingAway => {
            let reason = "demo: idle connection cut by the load balancer";
            let frame = CloseFrame { code: CloseCode::Away, reason: reason.into() };
            ws.send(Message::Close(Some(frame))).await?;
        }
        // Dropping the stream closes the socket with no close frame.
        Cut::Reset => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(n: u32) -> Duration {
        Duration::from_secs(1) * n
    }

    #[tokio::test]
    async fn sessions_are_held_through_the_held_stretch_and_cut_young_in_the_cut_stretch() {
        let cycle = Cycle::new(Duration::from_secs(1));
        let period = HELD_TICKS + CUT_TICKS;
        // Opened at the start: held until the cut stretch begins.
        assert_eq!(cycle.cut_at(ticks(0)), ticks(HELD_TICKS));
        // Opened during the cut stretch: cut after its short lifetime.
        assert_eq!(cycle.cut_at(ticks(HELD_TICKS)), ticks(HELD_TICKS + LIFETIME_TICKS));
        // Opened too late in the cut stretch to be cut in it: held until the next one.
        let late = ticks(period) - Duration::from_millis(500);
        assert_eq!(cycle.cut_at(late), ticks(period + HELD_TICKS));
        // The next cycle repeats the first.
        assert_eq!(cycle.cut_at(ticks(period)), ticks(period + HELD_TICKS));
        // A cut is never earlier than the lifetime.
        for ms in (0..u64::from(period) * 3000).step_by(137) {
            let opened = Duration::from_millis(ms);
            let at = cycle.cut_at(opened);
            assert!(at >= opened + ticks(LIFETIME_TICKS), "{opened:?} cut at {at:?}");
            let phase = at.as_nanos() % ticks(period).as_nanos();
            assert!(phase >= ticks(HELD_TICKS).as_nanos(), "{opened:?} cut at {at:?}, in the held stretch");
        }
    }

    #[tokio::test]
    async fn cuts_alternate_between_going_away_and_reset() {
        let cycle = Cycle::new(Duration::ZERO);
        let cuts: Vec<Cut> = (0..4).map(|_| cycle.next_cut()).collect();
        assert_eq!(cuts, [Cut::GoingAway, Cut::Reset, Cut::GoingAway, Cut::Reset]);
        assert_eq!(cycle.tick, MIN_TICK);
    }
}
