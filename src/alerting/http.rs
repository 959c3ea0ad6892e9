//! A small HTTP/1.1 client for sending notifications: one POST per connection, bounded
//! in time and in how much of the answer it reads.
//!
//! Notifications are a few kilobytes to a handful of receivers; a full client library
//! would add more than it saves. http:// and https:// (system trust store) are supported.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::probe::tls::{self, Conn};
use crate::probe::TlsSettings;

/// The most of a receiver's answer that is read (the status line is what matters).
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("{0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl PostError {
    /// Whether trying again may help (a 4xx other than 429 will not).
    pub fn retryable(&self) -> bool {
        match self {
            PostError::Status { status, .. } => *status == 429 || *status >= 500,
            PostError::Url(_) => false,
            _ => true,
        }
    }
}

/// POSTs `body` as JSON to `url`; `Ok(status)` for any 2xx answer.
pub async fn post_json(
    url: &Uri,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, PostError> {
    tokio::time::timeout(timeout, post(url, headers, body)).await.map_err(|_| PostError::Timeout(timeout))?
}

async fn post(url: &Uri, headers: &[(String, String)], body: &[u8]) -> Result<u16, PostError> {
    let secure = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(PostError::Url(format!("`{url}` must be http:// or https://"))),
    };
    let host = url.host().ok_or_else(|| PostError::Url(format!("`{url}` has no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp =
        TcpStream::connect((host, port)).await.map_err(|e| PostError::Connect(format!("connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut conn = if secure {
        let config = tls::client_config(&TlsSettings::default()).map_err(PostError::Connect)?;
        tls::handshake(config, host, tcp).await.map_err(|e| PostError::Connect(e.message))?.0
    } else {
        Conn::Plain(tcp)
    };
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    // `Host` is `host:port` only: userinfo never goes on the wire in clear.
    let authority = url.authority().map_or(host, |a| a.as_str());
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wsprobe/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let io = |e: std::io::Error| PostError::Connect(format!("connection failed: {e}"));
    conn.write_all(head.as_bytes()).await.map_err(io)?;
    conn.write_all(body).await.map_err(io)?;
    conn.flush().await.map_err(io)?;

    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.map_err(io)?;
        if n == 0 || answer.len() + n > MAX_RESPONSE {
            answer.extend_from_slice(&chunk[..n.min(MAX_RESPONSE.saturating_sub(answer.len()))]);
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            PostError::Malformed(format!("status line {:?}", crate::util::text::excerpt(status_line, 60)))
        })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
        // Kept whole (within MAX_RESPONSE): the dispatcher redacts it before cutting it.
        Err(PostError::Status { status, body: body.to_owned() })
    }
}
