//! The one HTTP(S) client: a request phase by phase over [`super::resolve`],
//! [`super::tcp`] and [`super::tls`], then HTTP/1.1 (hyper's connection-level client).
//!
//! Two uses, one path: health checks and remote breakers GET, following redirects and
//! failing on a body over the limit; alert receivers POST JSON, follow nothing and keep
//! only the first bytes of the answer. Both verify TLS with the caller's settings.
//!
//! Each hop opens a new connection (`Connection: close`), so every check measures DNS,
//! connect and TLS like a new client would. Phase times add up over the hops. One
//! deadline (the caller's `timeout`) bounds everything; when it runs out, the phase in
//! progress names the kind (`ConnectTimeout`, `TlsTimeout`, else `Timeout`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{resolve, tcp, tls, NetError, NetErrorKind};
use crate::util::text::excerpt;
use crate::util::time::fmt_duration;
use crate::util::url::{parse_http_url, HttpUrl};

/// Redirects followed before giving up with `too_many_redirects`.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// What is asked: a GET (redirects followed, a body over the limit is an error) or a
/// POST of JSON (nothing followed, the answer cut at the limit).
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    Get,
    Post { json: &'a [u8] },
}

/// What one request needs; `url` is already expanded.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: Method<'a>,
    pub url: &'a str,
    /// Sent to the first origin only: a redirect elsewhere does not get credentials.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub timeout: Duration,
    pub max_body_size: usize,
    pub tls: &'a Arc<ClientConfig>,
    /// Overrides the name TLS verifies (and sends as SNI) on the first origin.
    pub server_name: Option<&'a str>,
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub redirects: usize,
}

/// Seconds spent in each phase, summed over redirect hops.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    /// From sending the request to the response head.
    pub first_byte: Option<f64>,
    pub total: f64,
}

fn add(slot: &mut Option<f64>, secs: f64) {
    *slot = Some(slot.unwrap_or(0.0) + secs);
}

/// What went wrong with a request; each caller names it with its own reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The URL cannot be requested (the sentence says why).
    Url,
    /// Resolving the host failed, or did not finish in time.
    Dns,
    Refused,
    ConnectTimeout,
    Connect,
    Tls,
    TlsTimeout,
    /// The deadline passed after the connection was up.
    Timeout,
    BodyTooLarge,
    TooManyRedirects,
    /// Not valid HTTP/1.1, or a redirect to nowhere.
    Protocol,
}

/// A failed request: its kind, a sentence, and the status if one came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub kind: HttpErrorKind,
    pub message: String,
    pub status: Option<u16>,
}

impl HttpError {
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None }
    }
}

impl From<NetError> for HttpError {
    fn from(e: NetError) -> Self {
        let kind = match e.kind {
            NetErrorKind::Dns => HttpErrorKind::Dns,
            NetErrorKind::Refused => HttpErrorKind::Refused,
            NetErrorKind::Connect => HttpErrorKind::Connect,
            NetErrorKind::Tls | NetErrorKind::NotTls => HttpErrorKind::Tls,
        };
        HttpError::new(kind, e.message)
    }
}

/// Which part of a GET is running, to name the reason when the deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Dns,
    Connect,
    Tls,
    Http,
}

/// Aborts the connection task when the GET is done with it, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Performs the request, following a GET's redirects; fills `timings` whatever the outcome.
pub async fn request(req: &Request<'_>, timings: &mut Timings) -> Result<Answer, HttpError> {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let out = follow(req, deadline, timings).await;
    timings.total = started.elapsed().as_secs_f64();
    out
}

async fn follow(req: &Request<'_>, deadline: Instant, timings: &mut Timings) -> Result<Answer, HttpError> {
    let first = parse_http_url(req.url)
        .map_err(|why| HttpError::new(HttpErrorKind::Url, format!("the url {why}")))?;
    let mut url = first.clone();
    let mut visited = vec![url.uri.to_string()];
    loop {
        let same_origin = url.origin() == first.origin();
        let headers = if same_origin { req.headers } else { &[] };
        let server_name = if same_origin { req.server_name } else { None };
        let hop = Hop {
            method: req.method,
            url: &url,
            headers,
            server_name,
            tls: req.tls,
            max_body_size: req.max_body_size,
        };
        let answer = hop.run(deadline, req.timeout, timings).await?;
        let Some(location) = answer.location.filter(|_| is_redirect(answer.status)) else {
            return Ok(Answer {
                status: answer.status,
                content_type: answer.content_type,
                body: answer.body,
                redirects: visited.len() - 1,
            });
        };
        let next = resolve_location(&url, &location).map_err(|why| HttpError {
            kind: HttpErrorKind::Protocol,
            message: format!(
                "HTTP {} redirects to `{}`, which {why}",
                answer.status,
                excerpt(&location, 100)
            ),
            status: Some(answer.status),
        })?;
        let next_text = next.uri.to_string();
        let looped = visited.contains(&next_text);
        visited.push(next_text);
        if looped || visited.len() > MAX_REDIRECTS + 1 {
            let chain = visited.iter().map(|u| short_url(u)).collect::<Vec<_>>().join(" → ");
            let message = if looped {
                format!("redirect loop: {chain}")
            } else {
                format!("more than {MAX_REDIRECTS} redirects: {chain}")
            };
            return Err(HttpError {
                kind: HttpErrorKind::TooManyRedirects,
                message,
                status: Some(answer.status),
            });
        }
        url = next;
    }
}

/// A URL for messages: path and query only, the origin is the configured one.
fn short_url(u: &str) -> String {
    let path = u.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or(u);
    excerpt(path, 80)
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Resolves a `Location` against the URL that answered it (RFC 3986, the common forms).
fn resolve_location(base: &HttpUrl, location: &str) -> Result<HttpUrl, String> {
    let location = location.trim();
    if location.contains("://") {
        return parse_http_url(location);
    }
    let scheme = if base.secure { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return parse_http_url(&format!("{scheme}://{rest}"));
    }
    let authority = base.uri.authority().map_or("", |a| a.as_str());
    let path = if location.starts_with('/') {
        location.to_owned()
    } else if location.starts_with('?') {
        format!("{}{location}", base.uri.path())
    } else {
        let dir = base.uri.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    parse_http_url(&format!("{scheme}://{authority}{path}"))
}

/// One request on one connection.
struct Hop<'a> {
    method: Method<'a>,
    url: &'a HttpUrl,
    headers: &'a [(HeaderName, HeaderValue)],
    server_name: Option<&'a str>,
    tls: &'a Arc<ClientConfig>,
    max_body_size: usize,
}

/// What one hop got: a final answer or a redirect to follow.
struct HopAnswer {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    body: Bytes,
}

/// Runs `fut` until `deadline`; when it passes, the error names `step`.
async fn bounded<T>(
    step: Step,
    deadline: Instant,
    timeout: Duration,
    fut: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(out) => out,
        Err(_) => {
            let within = fmt_duration(timeout);
            Err(match step {
                Step::Dns => HttpError::new(
                    HttpErrorKind::Dns,
                    format!("DNS resolution did not finish within the check's {within} timeout"),
                ),
                Step::Connect => HttpError::new(
                    HttpErrorKind::ConnectTimeout,
                    format!("TCP connect did not finish within the check's {within} timeout"),
                ),
                Step::Tls => HttpError::new(
                    HttpErrorKind::TlsTimeout,
                    format!("TLS handshake did not finish within the check's {within} timeout"),
                ),
                Step::Http => {
                    HttpError::new(HttpErrorKind::Timeout, format!("no complete answer within {within}"))
                }
            })
        }
    }
}

impl Hop<'_> {
    async fn run(
        &self,
        deadline: Instant,
        timeout: Duration,
        timings: &mut Timings,
    ) -> Result<HopAnswer, HttpError> {
        let url = self.url;
        let t = Instant::now();
        let addrs = bounded(Step::Dns, deadline, timeout, async {
            resolve::resolve(&url.host, url.port).await.map_err(HttpError::from)
        })
        .await?;
        add(&mut timings.dns, t.elapsed().as_secs_f64());

        let t = Instant::now();
        let tcp = bounded(Step::Connect, deadline, timeout, async {
            tcp::connect(&addrs).await.map_err(HttpError::from)
        })
        .await?;
        add(&mut timings.connect, t.elapsed().as_secs_f64());

        let conn = if url.secure {
            let t = Instant::now();
            let name = self.server_name.unwrap_or(&url.host);
            let (conn, _expiry) = bounded(Step::Tls, deadline, timeout, async {
                tls::handshake(self.tls.clone(), name, tcp).await.map_err(HttpError::from)
            })
            .await?;
            add(&mut timings.tls, t.elapsed().as_secs_f64());
            conn
        } else {
            tls::Conn::Plain(tcp)
        };

        bounded(Step::Http, deadline, timeout, self.exchange(conn, timings)).await
    }

    async fn exchange(&self, conn: tls::Conn, timings: &mut Timings) -> Result<HopAnswer, HttpError> {
        let url = self.url;
        // Receivers keep getting `Host`, `Content-Type`, ... spelled as they always were
        // (header names are case-insensitive, but not every webhook endpoint knows it);
        // health checks keep hyper's lower case.
        let title_case = matches!(self.method, Method::Post { .. });
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(title_case)
            .handshake::<_, Full<Bytes>>(TokioIo::new(conn))
            .await
            .map_err(|e| protocol_error("cannot start HTTP/1.1", &e))?;
        // The connection ends when the answer is read or dropped; the guard covers errors.
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));

        let target = url.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = url.uri.authority().map_or(url.host.as_str(), |a| a.as_str());
        // `Host` is `host:port` only: userinfo never goes on the wire in clear.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let builder = match self.method {
            Method::Get => hyper::Request::get(target).header(header::ACCEPT, "application/json, */*;q=0.5"),
            Method::Post { .. } => {
                hyper::Request::post(target).header(header::CONTENT_TYPE, "application/json")
            }
        };
        let body = match self.method {
            Method::Get => Bytes::new(),
            Method::Post { json } => Bytes::copy_from_slice(json),
        };
        let mut request = builder
            .header(header::HOST, authority)
            .header(header::USER_AGENT, concat!("wsprobe/", env!("CARGO_PKG_VERSION")))
            .header(header::CONNECTION, "close")
            .body(Full::new(body))
            .map_err(|e| HttpError::new(HttpErrorKind::Connect, format!("cannot build the request: {e}")))?;
        for (name, value) in self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }

        let t = Instant::now();
        let response =
            sender.send_request(request).await.map_err(|e| protocol_error("no valid answer", &e))?;
        timings.first_byte = Some(timings.first_byte.unwrap_or(0.0) + t.elapsed().as_secs_f64());

        let status = response.status();
        let text = |name: header::HeaderName| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let content_type = text(header::CONTENT_TYPE);
        let location = text(header::LOCATION);
        let cut = matches!(self.method, Method::Post { .. });
        if cut {
            // A receiver's answer matters for its status; its body is kept for the log.
            let body = read_cut(response.into_body(), self.max_body_size).await.map_err(|e| HttpError {
                status: Some(status.as_u16()),
                ..protocol_error("the body broke off", &e)
            })?;
            return Ok(HopAnswer { status: status.as_u16(), content_type, location: None, body });
        }
        if is_redirect(status.as_u16()) && location.is_some() {
            return Ok(HopAnswer { status: status.as_u16(), content_type, location, body: Bytes::new() });
        }
        // A declared length above the limit fails before anything is read.
        let declared = text(header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > self.max_body_size as u64) {
            return Err(too_large(status, self.max_body_size, Some(len)));
        }
        let body = read_limited(response.into_body(), self.max_body_size).await.map_err(|e| match e {
            ReadError::TooLarge => too_large(status, self.max_body_size, None),
            ReadError::Http(e) => {
                HttpError { status: Some(status.as_u16()), ..protocol_error("the body broke off", &e) }
            }
        })?;
        Ok(HopAnswer { status: status.as_u16(), content_type, location, body })
    }
}

fn too_large(status: StatusCode, limit: usize, declared: Option<u64>) -> HttpError {
    let limit = crate::util::units::ByteSize(limit as u64);
    let message = match declared {
        Some(len) => format!("the body is {len} bytes, more than max_body_size ({limit}); not read"),
        None => format!("the body is larger than max_body_size ({limit}); reading stopped there"),
    };
    HttpError { kind: HttpErrorKind::BodyTooLarge, message, status: Some(status.as_u16()) }
}

/// hyper's error with its causes, which say what actually went wrong. A TLS alert after
/// the handshake (a refused client certificate) is a TLS failure, said plainly.
fn protocol_error(what: &str, e: &hyper::Error) -> HttpError {
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<std::io::Error>().and_then(tls::alert_after_handshake) {
            return HttpError::from(refused);
        }
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    HttpError::new(HttpErrorKind::Protocol, message)
}

enum ReadError {
    TooLarge,
    Http(hyper::Error),
}

/// Reads a body, failing as soon as it exceeds `limit`: at most `limit` bytes are held.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Http)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads at most `limit` bytes of a body and drops the rest.
async fn read_cut(mut body: Incoming, limit: usize) -> Result<Bytes, hyper::Error> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = limit.saturating_sub(buf.len());
            buf.extend_from_slice(&data[..data.len().min(room)]);
            if buf.len() >= limit {
                break;
            }
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base = parse_http_url("http://127.0.0.1:8080/a/b?x=1").unwrap();
        let r = |l: &str| resolve_location(&base, l).unwrap().uri.to_string();
        assert_eq!(r("/c"), "http://127.0.0.1:8080/c");
        assert_eq!(r("c?d=2"), "http://127.0.0.1:8080/a/c?d=2");
        assert_eq!(r("?y=2"), "http://127.0.0.1:8080/a/b?y=2");
        assert_eq!(r("//example.test/z"), "http://example.test/z");
        assert_eq!(r("https://example.test/"), "https://example.test/");
        assert!(resolve_location(&base, "ftp://x/").is_err());
    }

    #[test]
    fn messages_show_paths_not_origins() {
        assert_eq!(short_url("http://127.0.0.1:1/a?b"), "/a?b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
