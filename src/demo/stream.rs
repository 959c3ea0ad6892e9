//! The demo's WebSocket endpoints. `/agent` speaks the incident's agent protocol: a
//! welcome, then on an `execute_agent` request an application-level heartbeat
//! (`{"type":"ping"}`, answered by the target's `respond` rule) and the five agent events
//! with realistic gaps. `/flaky` runs the same request quickly and misbehaves on the cycle
//! of [`super::flaky`]. `/session` holds sessions and cuts them on the cycle of
//! [`super::session`]. Anything else (the `wss://` listener's `/tls`) is a plain healthy
//! service: a welcome, pings answered, a clean close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::flaky::{self, FlakyMode};
use super::session::{self, Cycle};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The agent events streamed after an `execute_agent` request, with the gap before each.
pub(crate) const AGENT_EVENTS: [(&str, u64); 5] = [
    ("agent_started", 50),
    ("agent_thinking", 300),
    ("tool_executing", 200),
    ("tool_completed", 400),
    ("agent_completed", 250),
];

/// Gap between the events of `/flaky`'s shorter run.
const FLAKY_GAP: Duration = Duration::from_millis(20);

pub(crate) const WELCOME: &str = r#"{"type":"system_message","data":{"event":"connection_established"}}"#;

/// Which endpoint a connection asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Agent,
    Flaky(FlakyMode),
    Plain,
}

/// Serves one plain-TCP connection. The path decides the behaviour; it is peeked before
/// the upgrade so a slow-upgrade delay happens before any response byte is written.
pub(crate) async fn serve_tcp(
    stream: TcpStream,
    flaky_count: Arc<AtomicU64>,
    cycle: Arc<Cycle>,
) -> Result<(), Error> {
    let mut buf = [0u8; 256];
    let n = stream.peek(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..n]);
    if head.starts_with("GET /session") {
        let ws = tokio_tungstenite::accept_async(stream).await?;
        return session::serve(ws, &cycle).await;
    }
    let endpoint = if head.starts_with("GET /flaky") {
        Endpoint::Flaky(flaky::mode(flaky_count.fetch_add(1, Ordering::Relaxed)))
    } else if head.starts_with("GET /agent") {
        Endpoint::Agent
    } else {
        Endpoint::Plain
    };
    if let Endpoint::Flaky(FlakyMode::SlowUpgrade(delay)) = endpoint {
        tokio::time::sleep(delay).await;
    }
    let ws = tokio_tungstenite::accept_async(stream).await?;
    serve(ws, endpoint).await
}

/// Serves one connection of the `wss://` listener, after its TLS handshake.
pub(crate) async fn serve_plain<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<(), Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    serve(ws, Endpoint::Plain).await
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    endpoint: Endpoint,
) -> Result<(), Error> {
    ws.send(Message::text(WELCOME)).await?;
    if endpoint == Endpoint::Flaky(FlakyMode::CloseAfterWelcome) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let frame = CloseFrame { code: CloseCode::Error, reason: "demo: simulated crash".into() };
        ws.send(Message::Close(Some(frame))).await?;
        return Ok(());
    }
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        match (value.get("type").and_then(|t| t.as_str()), endpoint) {
            (Some("ping"), _) => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            (Some("execute_agent"), Endpoint::Agent) => run_agent(&mut ws).await?,
            (Some("execute_agent"), Endpoint::Flaky(mode)) => run_flaky(&mut ws, mode).await?,
            _ => {}
        }
    }
    Ok(())
}

/// The incident's agent run, heartbeat first: a client that does not answer it gets an
/// error message instead of the run.
async fn run_agent<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Result<(), Error> {
    ws.send(Message::text(r#"{"type":"ping"}"#)).await?;
    if !pong_within(ws, Duration::from_secs(1)).await {
        let error = r#"{"type":"error_message","error":"heartbeat not answered"}"#;
        ws.send(Message::text(error)).await?;
        return Ok(());
    }
    for (event, gap_ms) in AGENT_EVENTS {
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        ws.send(Message::text(event_body(event))).await?;
    }
    Ok(())
}

/// The same events quickly; a stalling connection stops after the first and goes quiet
/// while still answering pings, which only a bound on the gap between messages catches.
async fn run_flaky<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    mode: FlakyMode,
) -> Result<(), Error> {
    for (i, (event, _)) in AGENT_EVENTS.into_iter().enumerate() {
        if mode == FlakyMode::Stall && i == 1 {
            break;
        }
        tokio::time::sleep(FLAKY_GAP).await;
        ws.send(Message::text(event_body(event))).await?;
    }
    Ok(())
}

fn event_body(event: &str) -> String {
    serde_json::json!({"type": event, "data": {"event": event}}).to_string()
}

/// Reads until the client answers the heartbeat with `{"type":"pong"}`.
async fn pong_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    limit: Duration,
) -> bool {
    let wait = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg {
                let is_pong = serde_json::from_str::<serde_json::Value>(&text)
                    .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("pong"));
                if is_pong {
                    return true;
                }
            }
        }
        false
    };
    tokio::time::timeout(limit, wait).await.unwrap_or(false)
}
