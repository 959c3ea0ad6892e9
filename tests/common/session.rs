//! Fake servers for held sessions, and reading the daemon's view of them.
//!
//! [`held`] upgrades, sends the welcome and then follows a [`Behaviour`]: answering pings
//! and heartbeats (or stopping after a few), cutting every session after a delay, flooding
//! pings or data, pushing one message. It counts the sessions open right now and notes
//! when each upgrade happened, so tests can assert reconnect rates and resizes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::wire::{close_payload, pause, CLOSE, PING, PONG, TEXT};
use super::{serve, upgraded, FakeServer};

/// The heartbeat the tests configure, and the server's answer to it.
pub const HEARTBEAT: &str = r#"{"type":"ping"}"#;
pub const HEARTBEAT_ANSWER: &str = r#"{"type":"pong"}"#;

/// How a session ends from the server's side.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// A close frame with this code, then TCP closed after the client's reply.
    Close(u16),
    /// A TCP reset.
    Reset,
}

/// What flows from the server without being asked.
#[derive(Debug, Clone, Copy)]
pub enum Flood {
    /// Pings back to back.
    Pings,
    /// Text messages of this many bytes, back to back.
    Text(usize),
}

/// What a [`held`] server does after the upgrade and the welcome.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Pongs answered per session before it stops answering them (`None`: all).
    pub pongs: Option<usize>,
    /// Heartbeats answered per session before it stops (`None`: all).
    pub heartbeats: Option<usize>,
    /// End every session this long after its upgrade.
    pub cut_after: Option<(Duration, Cut)>,
    pub flood: Option<Flood>,
    /// Send this text this long after the upgrade.
    pub push: Option<(Duration, String)>,
}

/// A [`held`] server and what it saw.
#[derive(Debug)]
pub struct Held {
    pub server: FakeServer,
    live: Arc<AtomicUsize>,
    upgrades: Arc<Mutex<Vec<Instant>>>,
    pongs: Arc<AtomicUsize>,
}

impl Held {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Sessions open right now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// When each upgrade was answered, in order.
    pub fn upgrades(&self) -> Vec<Instant> {
        self.upgrades.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Pongs sent, over all sessions.
    pub fn pongs(&self) -> usize {
        self.pongs.load(Ordering::SeqCst)
    }

    /// Close codes the clients sent.
    pub fn closes(&self) -> Vec<u16> {
        self.server.closes()
    }
}

/// Decrements the live count when a session's task ends, however it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A server holding sessions as `behaviour` says; see the module docs.
pub async fn held(behaviour: Behaviour) -> Held {
    let live = Arc::new(AtomicUsize::new(0));
    let upgrades = Arc::new(Mutex::new(Vec::new()));
    let pongs = Arc::new(AtomicUsize::new(0));
    let b = Arc::new(behaviour);
    let (l, u, p) = (Arc::clone(&live), Arc::clone(&upgrades), Arc::clone(&pongs));
    let server = serve(false, move |stream, shared| {
        let (b, live, upgrades, pongs) = (Arc::clone(&b), Arc::clone(&l), Arc::clone(&u), Arc::clone(&p));
        async move {
            let Some(mut conn) = upgraded(stream, &shared, true).await else { return };
            let opened = Instant::now();
            upgrades.lock().unwrap_or_else(PoisonError::into_inner).push(opened);
            live.fetch_add(1, Ordering::SeqCst);
            let _open = Open(live);
            let cut_at = b.cut_after.map(|(d, cut)| (opened + d, cut));
            let mut push = b.push.clone().map(|(d, text)| (opened + d, text));
            let (mut pongs_left, mut beats_left) = (b.pongs, b.heartbeats);
            loop {
                let wake = [cut_at.map(|c| c.0), push.as_ref().map(|p| p.0)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(opened + Duration::from_secs(3600));
                let flooding = b.flood.is_some();
                tokio::select! {
                    biased;
                    frame = conn.read_frame() => {
                        let Some(frame) = frame else { return };
                        match frame.opcode {
                            PING if pongs_left != Some(0) => {
                                pongs_left = pongs_left.map(|n| n - 1);
                                if conn.send_frame(PONG, &frame.payload).await.is_err() { return }
                                pongs.fetch_add(1, Ordering::SeqCst);
                            }
                            TEXT if frame.payload == HEARTBEAT.as_bytes() && beats_left != Some(0) => {
                                beats_left = beats_left.map(|n| n - 1);
                                if conn.send_frame(TEXT, HEARTBEAT_ANSWER.as_bytes()).await.is_err() { return }
                            }
                            CLOSE => {
                                shared.record_close(&frame.payload);
                                let _ = conn.send_frame(CLOSE, &frame.payload).await;
                                return;
                            }
                            _ => {}
                        }
                    }
                    () = tokio::time::sleep_until(wake) => {
                        let now = Instant::now();
                        if let Some((at, cut)) = cut_at.filter(|c| now >= c.0) {
                            let _ = at;
                            match cut {
                                Cut::Close(code) => {
                                    if conn.send_frame(CLOSE, &close_payload(code, "cut")).await.is_ok() {
                                        conn.await_close().await;
                                    }
                                }
                                Cut::Reset => {
                                    let _ = conn.into_inner().set_zero_linger();
                                }
                            }
                            return;
                        }
                        if let Some((_, text)) = push.take_if(|p| now >= p.0) {
                            if conn.send_frame(TEXT, text.as_bytes()).await.is_err() { return }
                        }
                    }
                    () = pause(Duration::ZERO), if flooding => {
                        let sent = match b.flood {
                            Some(Flood::Pings) => conn.send_frame(PING, b"flood").await,
                            Some(Flood::Text(n)) => conn.send_frame(TEXT, &vec![b'x'; n]).await,
                            None => Ok(()),
                        };
                        if sent.is_err() { return }
                    }
                }
            }
        }
    })
    .await;
    Held { server, live, upgrades, pongs }
}

/// The value of one series in a Prometheus text exposition, e.g.
/// `wsprobe_sessions_open{target="a"}`; `None` when it is not there.
pub fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Like [`value`], 0 when the series is absent.
pub fn value_or_zero(exposition: &str, series: &str) -> f64 {
    value(exposition, series).unwrap_or(0.0)
}

/// The current resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
