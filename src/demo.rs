//! `wsprobe demo`: an embedded WebSocket service and a daemon probing it.
//!
//! No configuration file, no network beyond loopback. `/agent` speaks the incident's agent
//! protocol: a welcome, then on an `execute_agent` request an application-level heartbeat
//! (`{"type":"ping"}`, answered by the target's `respond` rule) and the five agent events
//! with realistic gaps. `/flaky` misbehaves on a fixed cycle (slow upgrades, a stalled
//! stream, an abrupt close, a handshake that times out) so the dashboards and alerts have
//! failures to show.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// What `/flaky` does on its n-th connection, cycling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlakyMode {
    Healthy,
    SlowUpgrade(Duration),
    Stall,
    CloseAfterWelcome,
}

/// The misbehaviour cycle of `/flaky`: mostly healthy, each failure kind once.
pub(crate) const FLAKY_CYCLE: [FlakyMode; 6] = [
    FlakyMode::Healthy,
    FlakyMode::SlowUpgrade(Duration::from_millis(800)),
    FlakyMode::Stall,
    FlakyMode::Healthy,
    FlakyMode::CloseAfterWelcome,
    FlakyMode::SlowUpgrade(Duration::from_secs(5)),
];

/// The agent events streamed after an `execute_agent` request, with the gap before each.
pub(crate) const AGENT_EVENTS: [(&str, u64); 5] = [
    ("agent_started", 50),
    ("agent_thinking", 300),
    ("tool_executing", 200),
    ("tool_completed", 400),
    ("agent_completed", 250),
];

#[derive(Debug)]
pub struct DemoServer {
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Starts the demo service on an ephemeral loopback port.
pub async fn start_server() -> std::io::Result<DemoServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let flaky_count = Arc::new(AtomicU64::new(0));
    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let flaky_count = flaky_count.clone();
            tokio::spawn(async move {
                let _ = serve(stream, flaky_count).await;
            });
        }
    });
    Ok(DemoServer { addr, handle })
}

/// The demo's configuration, as YAML a user could have written.
pub fn config_yaml(listen: SocketAddr, service: SocketAddr, interval: Duration) -> String {
    let interval = humantime::format_duration(interval);
    format!(
        r#"listen: {listen}
defaults:
  interval: {interval}
  jitter: 10%
  timeouts: {{ handshake: 3s, first_message: 2s, ping: 2s, close: 2s, idle: 10s, probe: 20s }}
targets:
  # The incident's streaming check: request an agent run, expect its five events.
  - name: demo-agent
    url: ws://{service}/agent
    fail_on: [ {{ json: {{ type: error_message }} }} ]
    respond: [ {{ when: {{ json: {{ type: ping }} }}, send: {{ json: {{ type: pong }} }} }} ]
    steps:
      - name: welcome
        expect: {{ json: {{ data.event: connection_established }} }}
        within: 2s
      - name: request
        send: {{ json: {{ type: execute_agent, message: synthetic check, request_id: "${{uuid}}" }} }}
      - name: agent_started
        expect: {{ json: {{ type: agent_started }} }}
        within: 3s
      - name: agent_thinking
        expect: {{ json: {{ type: agent_thinking }} }}
        within: 3s
        max_gap: 2s
      - name: tool_executing
        expect: {{ json: {{ type: tool_executing }} }}
        within: 3s
        max_gap: 2s
      - name: tool_completed
        expect: {{ json: {{ type: tool_completed }} }}
        within: 3s
        max_gap: 2s
      - name: agent_completed
        expect: {{ json: {{ type: agent_completed }} }}
        within: 3s
        max_gap: 2s
      - ping: {{}}
  # Connect, first message, ping, close; misbehaves on a cycle.
  - name: demo-flaky
    url: ws://{service}/flaky
"#
    )
}

async fn serve(stream: TcpStream, flaky_count: Arc<AtomicU64>) -> Result<(), Box<dyn std::error::Error>> {
    // The path decides the behaviour; peek it before the upgrade so a slow-upgrade
    // delay happens before any response byte is written.
    let mut buf = [0u8; 256];
    let n = stream.peek(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..n]);
    let mode = if head.starts_with("GET /flaky") {
        let n = flaky_count.fetch_add(1, Ordering::Relaxed);
        FLAKY_CYCLE[(n % FLAKY_CYCLE.len() as u64) as usize]
    } else {
        FlakyMode::Healthy
    };
    if let FlakyMode::SlowUpgrade(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    if mode == FlakyMode::Stall {
        // Upgraded, then silent: the probe's first-message timeout fires.
        while ws.next().await.is_some() {}
        return Ok(());
    }
    let welcome = r#"{"type":"system_message","data":{"event":"connection_established"}}"#;
    ws.send(Message::text(welcome)).await?;
    if mode == FlakyMode::CloseAfterWelcome {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let frame = CloseFrame { code: CloseCode::Error, reason: "demo: simulated crash".into() };
        ws.send(Message::Close(Some(frame))).await?;
        return Ok(());
    }
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        match value.get("type").and_then(|t| t.as_str()) {
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            Some("execute_agent") => {
                // An application-level heartbeat first: a client that does not answer it
                // gets an error message instead of the run.
                ws.send(Message::text(r#"{"type":"ping"}"#)).await?;
                if !pong_within(&mut ws, Duration::from_secs(1)).await {
                    let error = r#"{"type":"error_message","error":"heartbeat not answered"}"#;
                    ws.send(Message::text(error)).await?;
                    continue;
                }
                for (event, gap_ms) in AGENT_EVENTS {
                    tokio::time::sleep(Duration::from_millis(gap_ms)).await;
                    let body = serde_json::json!({"type": event, "data": {"event": event}});
                    ws.send(Message::text(body.to_string())).await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads until the client answers the heartbeat with `{"type":"pong"}`.
async fn pong_within(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>, limit: Duration) -> bool {
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
