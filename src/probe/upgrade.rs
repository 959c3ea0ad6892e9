//! Phase `handshake`: the HTTP/1.1 upgrade to WebSocket.

use std::io;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use super::session::io_reason;
use super::tls::Conn;
use super::{ProbeError, Reason};

/// Sends the upgrade request and checks the answer; returns the open socket.
pub async fn upgrade(
    uri: &Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    subprotocols: &[String],
    max_message_size: usize,
    conn: Conn,
) -> Result<WebSocketStream<Conn>, ProbeError> {
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
        .max_frame_size(Some(max_message_size));
    match client_async_with_config(request, conn, Some(config)).await {
        Ok((ws, _response)) => Ok(ws),
        Err(e) => Err(map_error(e)),
    }
}

fn map_error(e: WsError) -> ProbeError {
    match e {
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
