//! Phase `handshake`: the HTTP/1.1 upgrade to WebSocket.
//!
//! The library checks the status, the accept key and the subprotocol; we add what it
//! leaves out (an extension the server chose although we offered none, interim `1xx`
//! answers ahead of the `101`, see [`SkipInterim`]) and read the
//! status of answers it refuses to parse (`HTTP/1.0 503` from an old proxy) from the
//! [`Tap`] beneath it.

use std::io;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use super::interim::SkipInterim;
use super::session::io_reason;
use super::tap::{Seen, Tap};
use super::{ProbeError, Reason};
use crate::net::tls::Conn;

/// The open socket, with the tap that watches what the server sends.
pub(crate) type Socket = WebSocketStream<Tap<SkipInterim<Conn>>>;

/// The socket's read buffer. The library's default (128 KiB) is allocated up front for
/// every connection; probes and held sessions read small messages, and with ten thousand
/// sessions open that default alone would be 1.25 GiB. Larger messages still arrive
/// whole, read in more chunks.
const READ_BUFFER: usize = 4 * 1024;

/// Sends the upgrade request and checks the answer; returns the open socket.
/// Frames are written as they are sent (no write buffering), so a probe's timings
/// include the write.
pub async fn upgrade(
    uri: &Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    subprotocols: &[String],
    max_message_size: usize,
    conn: Conn,
) -> Result<Socket, ProbeError> {
    let mut request = uri.clone().into_client_request().map_err(|e| {
        ProbeError::new(Reason::HandshakeInvalid, format!("cannot build the upgrade request: {e}"))
    })?;
    let req_headers = request.headers_mut();
    for (name, value) in headers {
        req_headers.insert(name, value);
    }
    if !subprotocols.is_empty() {
        let joined = subprotocols.join(", ");
        if let Ok(value) = HeaderValue::from_str(&joined) {
            req_headers.insert("sec-websocket-protocol", value);
        }
    }
    // Bounds both frames and reassembled messages, so a hostile length prefix is
    // rejected from the frame header before anything is allocated for it.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
        // The library's 128 KiB default, allocated per connection, is most of what an
        // idle held session costs; reads of larger messages just take more turns.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let tap = Tap::new(SkipInterim::new(conn));
    let seen = tap.seen();
    match client_async_with_config(request, tap, Some(config)).await {
        Ok((ws, response)) => {
            // We offer no extension, so the server may select none (RFC 6455 §4.1).
            let chosen = response.headers().get_all("sec-websocket-extensions");
            match chosen.iter().find(|v| !v.as_bytes().trim_ascii().is_empty()) {
                None => Ok(ws),
                Some(v) => Err(ProbeError::new(
                    Reason::HandshakeInvalid,
                    format!(
                        "server selected extension `{}`, which wsprobe did not offer",
                        crate::util::text::excerpt(&String::from_utf8_lossy(v.as_bytes()), 64)
                    ),
                )),
            }
        }
        Err(e) => {
            let seen = seen.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
            Err(map_error(e, &seen))
        }
    }
}

/// `(version, status)` of a status line such as `HTTP/1.0 503 Service Unavailable`.
fn parse_status_line(line: &str) -> Option<(&str, u16)> {
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().filter(|v| v.starts_with("HTTP/"))?;
    let code = parts.next().filter(|c| c.len() == 3)?.parse().ok()?;
    (100..=999).contains(&code).then_some((version, code))
}

fn map_error(e: WsError, seen: &Seen) -> ProbeError {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        // The library refuses HTTP/1.0 before looking at the status; an old proxy's
        // `HTTP/1.0 503` is still a refusal with a status, not a malformed answer.
        WsError::Protocol(P::WrongHttpVersion) => match parse_status_line(&seen.status_line) {
            Some((version, code)) if code != 101 => {
                let reason = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let message = format!("server answered the upgrade with {version} {code} {reason}");
                let mut err = ProbeError::new(Reason::HandshakeStatus, message.trim_end());
                err.http_status = Some(code);
                err
            }
            Some((version, _)) => ProbeError::new(
                Reason::HandshakeInvalid,
                format!("server answered the upgrade with {version} 101; an upgrade needs HTTP/1.1"),
            ),
            None => ProbeError::new(
                Reason::HandshakeInvalid,
                "invalid upgrade response: the HTTP version is not 1.1",
            ),
        },
        WsError::Http(response) => {
            let status = response.status();
            let mut err = ProbeError::new(
                Reason::HandshakeStatus,
                format!(
                    "server answered the upgrade with HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_owned(),
            );
            err.http_status = Some(status.as_u16());
            err
        }
        WsError::AttackAttempt => ProbeError::new(
            Reason::HandshakeInvalid,
            "the upgrade response was too large or sent in too many small pieces",
        ),
        WsError::Io(io) => {
            // TLS 1.3 servers judge the client certificate after the handshake: their
            // verdict is read here, and it is about TLS.
            if let Some(refused) = crate::net::tls::alert_after_handshake(&io) {
                return ProbeError::from(refused);
            }
            let reason = io_reason(&io);
            let what = if io.kind() == io::ErrorKind::UnexpectedEof {
                "server closed the connection before answering the upgrade".to_owned()
            } else {
                format!("connection failed during the upgrade: {io}")
            };
            ProbeError::new(reason.unwrap_or(Reason::HandshakeInvalid), what)
        }
        WsError::Protocol(p) => {
            ProbeError::new(Reason::HandshakeInvalid, format!("invalid upgrade response: {p}"))
        }
        other => ProbeError::new(Reason::HandshakeInvalid, format!("invalid upgrade response: {other}")),
    }
}
