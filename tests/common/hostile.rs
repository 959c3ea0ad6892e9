//! Servers that break the protocol on purpose: after a correct upgrade (bad frames, bad
//! close codes) or in the upgrade answer itself (odd statuses, missing or extra headers).
//! Each writes its bytes at once, then holds the socket open, recording the client's close
//! frames but answering nothing, so a client that waits for a reply it should not expect
//! shows up as a slow probe.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::wire::{accept_key, close_payload, encode_frame, switching_protocols, Conn, CLOSE, PING, PONG};
use super::{serve, upgraded, FakeServer, Shared};

/// What the server does once its bytes are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Keeps the socket open, discarding whatever arrives, until the client leaves.
    Hold,
    /// Closes its side of the TCP connection at once (FIN).
    Close,
}

/// A correct 101 (no welcome), then exactly `bytes`, then [`Then::Hold`].
pub async fn after_upgrade(bytes: Vec<u8>) -> FakeServer {
    after_upgrade_then(bytes, Then::Hold).await
}

/// A correct 101 (no welcome), then exactly `bytes`, then `then`.
pub async fn after_upgrade_then(bytes: Vec<u8>, then: Then) -> FakeServer {
    let bytes: Arc<[u8]> = bytes.into();
    serve(false, move |stream, shared| {
        let bytes = Arc::clone(&bytes);
        async move {
            let Some(mut conn) = upgraded(stream, &shared, false).await else {
                return;
            };
            if conn.send_raw(&bytes).await.is_ok() {
                finish(conn, &shared, then).await;
            }
        }
    })
    .await
}

/// Reads the upgrade request and answers with `answer(accept)`, where `accept` is the
/// correct `Sec-WebSocket-Accept` for the request's key; then `then`.
pub async fn answer(answer: fn(&str) -> String, then: Then) -> FakeServer {
    serve(false, move |stream, shared| async move {
        let mut conn = Conn::new(stream);
        let Some(request) = conn.read_request().await else {
            return;
        };
        shared.record_request(&request.head);
        let accept = accept_key(request.key.as_deref().unwrap_or(""));
        if conn.send_raw(answer(&accept).as_bytes()).await.is_ok() {
            finish(conn, &shared, then).await;
        }
    })
    .await
}

async fn finish(mut conn: Conn<tokio::net::TcpStream>, shared: &Shared, then: Then) {
    match then {
        // Records the close codes the client sends (see `FakeServer::closes`), never answers.
        Then::Hold => {
            while let Some(frame) = conn.read_frame().await {
                if frame.opcode == CLOSE {
                    shared.record_close(&frame.payload);
                }
            }
        }
        Then::Close => {
            let _ = conn.stream.shutdown().await;
            conn.drain().await;
        }
    }
}

/// A correct 101 carrying `extra` header lines (each ending in `\r\n`) before the blank line.
pub fn switching_with(accept: &str, extra: &str) -> String {
    let plain = switching_protocols(accept, None);
    let head = plain.strip_suffix("\r\n").unwrap_or(&plain);
    format!("{head}{extra}\r\n")
}

/// One raw frame: `first` is the whole first byte (FIN, RSV bits, opcode), unmasked.
pub fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = encode_frame(first & 0x0F, payload);
    out[0] = first;
    out
}

/// One frame masked with a fixed key, as only a client may send.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![0x80 | opcode, 0x80 | u8::try_from(payload.len()).unwrap_or(125).min(125)];
    out.extend_from_slice(&key);
    out.extend(payload.iter().take(125).enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A close frame with this code and reason.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    encode_frame(CLOSE, &close_payload(code, reason))
}

/// A correct 101 (no welcome); answers pings, and answers the client's close frame with a
/// close frame carrying `code`, then closes TCP.
pub async fn close_reply(code: u16) -> FakeServer {
    serve(false, move |stream, shared| async move {
        let Some(mut conn) = upgraded(stream, &shared, false).await else {
            return;
        };
        while let Some(frame) = conn.read_frame().await {
            match frame.opcode {
                PING if conn.send_frame(PONG, &frame.payload).await.is_err() => return,
                CLOSE => {
                    let _ = conn.send_raw(&close_frame(code, "")).await;
                    let _ = conn.stream.shutdown().await;
                    return;
                }
                _ => {}
            }
        }
    })
    .await
}
