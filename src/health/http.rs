//! A health check's or remote-breaker poll's GET, through the one client in
//! [`crate::net::http`], its failures named with the health reasons.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderName;
use rustls::ClientConfig;

use super::HealthReason;
use crate::net::http::{self as client, HttpErrorKind, Method};
pub use crate::net::http::{Answer, Timings};
use crate::util::headers::expand_headers;
use crate::util::template::{Template, Vars};

/// What a health check and a remote-breaker poll GET: the url and headers as configured
/// (expanded at each request, so rotated secrets are used at once), bounds and TLS.
#[derive(Debug)]
pub struct Endpoint<'a> {
    pub url: &'a Template,
    /// Sent to the first origin only: a redirect elsewhere does not get credentials.
    pub headers: &'a [(HeaderName, Template)],
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

/// Expands the endpoint for `target` and GETs it, following redirects. Every value
/// substituted is pushed onto `secrets` (for redaction) and `timings` is filled, whatever
/// the outcome.
pub async fn fetch(
    e: &Endpoint<'_>,
    target: &str,
    secrets: &mut Vec<String>,
    timings: &mut Timings,
) -> Result<Answer, GetError> {
    let vars = Vars { target: target.to_owned(), captures: Default::default() };
    let url = e
        .url
        .expand_with(&vars, secrets)
        .map_err(|why| GetError::new(HealthReason::ConnectError, format!("cannot expand the url: {why}")))?;
    let headers = expand_headers(e.headers, &vars, secrets)
        .map_err(|why| GetError::new(HealthReason::ConnectError, why))?;
    let request = client::Request {
        method: Method::Get,
        url: &url,
        headers: &headers,
        timeout: e.timeout,
        max_body_size: e.max_body_size,
        tls: e.tls,
        server_name: e.server_name,
    };
    client::request(&request, timings).await.map_err(GetError::from)
}
