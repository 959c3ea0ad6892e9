//! A health check's or remote-breaker poll's GET, through the one client in
//! [`crate::net::http`], its failures named with the health reasons.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use rustls::ClientConfig;

use super::HealthReason;
use crate::net::http::{self as client, HttpErrorKind, Method};
pub use crate::net::http::{Answer, Timings};

/// What one GET needs; `url` is already expanded.
#[derive(Debug)]
pub struct Get<'a> {
    pub url: &'a str,
    /// Sent to the first origin only: a redirect elsewhere does not get credentials.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub timeout: Duration,
    pub max_body_size: usize,
    pub tls: &'a Arc<ClientConfig>,
    /// Overrides the name TLS verifies (and sends as SNI) on the first origin.
    pub server_name: Option<&'a str>,
}

/// A failed GET: one reason, a sentence, and the status if one came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct GetError {
    pub reason: HealthReason,
    pub message: String,
    pub status: Option<u16>,
}

impl GetError {
    pub fn new(reason: HealthReason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), status: None }
    }
}

impl From<client::HttpError> for GetError {
    fn from(e: client::HttpError) -> Self {
        let reason = match e.kind {
            HttpErrorKind::Url | HttpErrorKind::Connect => HealthReason::ConnectError,
            HttpErrorKind::Dns => HealthReason::DnsError,
            HttpErrorKind::Refused => HealthReason::ConnectRefused,
            HttpErrorKind::ConnectTimeout => HealthReason::ConnectTimeout,
            HttpErrorKind::Tls => HealthReason::TlsError,
            HttpErrorKind::TlsTimeout => HealthReason::TlsTimeout,
            HttpErrorKind::Timeout => HealthReason::Timeout,
            HttpErrorKind::BodyTooLarge => HealthReason::BodyTooLarge,
            HttpErrorKind::TooManyRedirects => HealthReason::TooManyRedirects,
            HttpErrorKind::Protocol => HealthReason::ProtocolError,
        };
        GetError { reason, message: e.message, status: e.status }
    }
}

/// Performs the GET, following redirects; fills `timings` whatever the outcome.
pub async fn get(req: &Get<'_>, timings: &mut Timings) -> Result<Answer, GetError> {
    let request = client::Request {
        method: Method::Get,
        url: req.url,
        headers: req.headers,
        timeout: req.timeout,
        max_body_size: req.max_body_size,
        tls: req.tls,
        server_name: req.server_name,
    };
    client::request(&request, timings).await.map_err(GetError::from)
}

pub(crate) fn excerpt(s: &str, max: usize) -> String {
    crate::util::text::excerpt(s, max)
}
