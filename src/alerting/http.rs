//! Sending notifications: one POST of JSON per connection through the one client in
//! [`crate::net::http`], bounded in time and in how much of the answer it reads, over
//! TLS verified with the receiver's `tls` settings.

use std::time::Duration;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};

use crate::net::http::{self as client, HttpErrorKind, Method, Timings};
use crate::net::tls::{self, TlsSettings};

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
    tls_settings: &TlsSettings,
) -> Result<u16, PostError> {
    let mut parsed = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PostError::Url(format!("`{name}` is not a valid HTTP header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            PostError::Url(format!("the value of header `{name}` is not a valid HTTP header value"))
        })?;
        parsed.push((name, value));
    }
    // Built per delivery, as before: a rotated CA file is picked up without a restart.
    let tls = tls::client_config(tls_settings).map_err(PostError::Connect)?;
    let url_text = url.to_string();
    let request = client::Request {
        method: Method::Post { json: body },
        url: &url_text,
        headers: &parsed,
        timeout,
        max_body_size: MAX_RESPONSE,
        tls: &tls,
        server_name: tls_settings.server_name.as_deref(),
    };
    let answer = client::request(&request, &mut Timings::default()).await.map_err(|e| match e.kind {
        HttpErrorKind::Url => PostError::Url(e.message),
        HttpErrorKind::ConnectTimeout | HttpErrorKind::TlsTimeout | HttpErrorKind::Timeout => {
            PostError::Timeout(timeout)
        }
        HttpErrorKind::Protocol | HttpErrorKind::BodyTooLarge | HttpErrorKind::TooManyRedirects => {
            PostError::Malformed(e.message)
        }
        HttpErrorKind::Dns | HttpErrorKind::Refused | HttpErrorKind::Connect | HttpErrorKind::Tls => {
            PostError::Connect(e.message)
        }
    })?;
    if (200..300).contains(&answer.status) {
        Ok(answer.status)
    } else {
        // Kept whole (within MAX_RESPONSE): the dispatcher redacts it before cutting it.
        let body = String::from_utf8_lossy(&answer.body).trim().to_owned();
        Err(PostError::Status { status: answer.status, body })
    }
}
