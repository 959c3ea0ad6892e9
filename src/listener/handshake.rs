//! The TLS handshake of one connection to a TLS listener, bounded by the header read
//! timeout, and a clear answer to a client that speaks plain HTTP to it.
//!
//! A TLS client's first byte is a handshake record (0x16). A plain-HTTP client sends a
//! method name instead; rather than a handshake error it would show as a reset or as
//! garbage, it gets a `400` that says what went wrong, and the connection is closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{CloseReason, ListenerMetrics};

const HANDSHAKE_RECORD: u8 = 0x16;
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\nContent-Length: 49\r\n\r\nThis listener serves HTTPS; use an https:// URL.\n";

/// Completes the handshake, or counts and logs why not and returns `None`.
pub(super) async fn accept(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    within: Duration,
    metrics: &ListenerMetrics,
) -> Option<TlsStream<TcpStream>> {
    let closed = |reason: CloseReason| metrics.closed.with_label_values(&[reason.as_str()]).inc();
    let handshake = async {
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await.ok()?;
        if n == 1 && first[0] != HANDSHAKE_RECORD && first[0].is_ascii_alphabetic() {
            return Some(Err(stream));
        }
        Some(Ok(tokio_rustls::TlsAcceptor::from(config).accept(stream).await))
    };
    match tokio::time::timeout(within, handshake).await {
        Err(_) => {
            closed(CloseReason::TlsError);
            tracing::debug!("A TLS handshake on the listener did not finish in time.");
            None
        }
        Ok(None) => None,
        Ok(Some(Err(mut plain))) => {
            closed(CloseReason::PlainHttp);
            tracing::debug!("Plain HTTP arrived at the TLS listener; answered 400.");
            let _ = tokio::time::timeout(within, async {
                let _ = plain.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = plain.shutdown().await;
            })
            .await;
            None
        }
        Ok(Some(Ok(Err(e)))) => {
            closed(CloseReason::TlsError);
            tracing::debug!(error = %e, "A TLS handshake on the listener failed.");
            None
        }
        Ok(Some(Ok(Ok(tls)))) => Some(tls),
    }
}
