//! The checks every request but `GET /healthz` passes before it reaches the API, in
//! order: the `Host` (a loopback listener answers only to its own names, which defeats
//! DNS rebinding), the rate limit, basic authentication, and for `/-/reload` whether the
//! lifecycle endpoint is on and whether the request could have come from another site.
//!
//! A cross-site request is one whose `Origin` is not this listener's own, whose
//! `Sec-Fetch-Site` says another site sent it, or whose content type is one an HTML form
//! can send (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`):
//! browsers send those without asking the server first, and with the user's stored
//! basic-auth credentials.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, Response, StatusCode};

use super::web::{Active, Policy};
use super::web_config::RateLimit;

/// The path left open for liveness probes.
pub const OPEN_PATH: &str = "/healthz";
const RELOAD_PATH: &str = "/-/reload";
const REALM: &str = "Basic realm=\"wsprobe\", charset=\"UTF-8\"";

crate::label_enum! {
    /// Why the guard turned a request away: the `reason` label values.
    pub enum Refusal("reason") {
        /// The `Host` is not one a loopback listener answers to.
        Host => "host",
        /// Over `rate_limit`.
        RateLimited => "rate_limited",
        /// No or wrong credentials.
        Unauthorized => "unauthorized",
        /// `/-/reload` while `--web.enable-lifecycle=false`.
        LifecycleDisabled => "lifecycle_disabled",
        /// A request to `/-/reload` another site could have sent.
        CrossSite => "cross_site",
    }
}

impl Refusal {
    /// The answer sent instead of the API's.
    pub fn response(self) -> Response<Body> {
        let (status, text) = match self {
            Self::Host => (
                StatusCode::FORBIDDEN,
                "this listener is on loopback and answers only to localhost, IP addresses and the \
                 names given with --web.allowed-hosts\n",
            ),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "too many requests\n"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized\n"),
            Self::LifecycleDisabled => (
                StatusCode::FORBIDDEN,
                "the lifecycle endpoint is off (--web.enable-lifecycle=false); SIGHUP still reloads\n",
            ),
            Self::CrossSite => (StatusCode::FORBIDDEN, "cross-site requests to /-/reload are refused\n"),
        };
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
        if self == Self::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(REALM));
        }
        response
    }
}

/// Runs the checks; `Err` says why the request is turned away.
pub async fn check<B>(policy: &Policy, active: &Active, req: &Request<B>, tls: bool) -> Result<(), Refusal> {
    if req.uri().path() == OPEN_PATH {
        return Ok(());
    }
    if policy.listen.ip().is_loopback() && !host_allowed(policy, req) {
        return Err(Refusal::Host);
    }
    if active.limiter.as_ref().is_some_and(|l| !l.allow()) {
        return Err(Refusal::RateLimited);
    }
    if let Some(auth) = &active.auth {
        let value = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if !auth.allows(value).await {
            return Err(Refusal::Unauthorized);
        }
    }
    if req.uri().path() == RELOAD_PATH {
        if !policy.enable_lifecycle {
            return Err(Refusal::LifecycleDisabled);
        }
        if is_cross_site(req.headers(), policy, tls) {
            return Err(Refusal::CrossSite);
        }
    }
    Ok(())
}

/// Adds the configured response headers.
pub fn decorate(active: &Active, response: &mut Response<Body>) {
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

/// `host[:port]` split into a lower-case host (brackets kept off IPv6) and the port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_ascii_lowercase(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (authority, None),
    };
    if host.is_empty() || host.contains(':') {
        return None;
    }
    Some((host.trim_end_matches('.').to_ascii_lowercase(), port))
}

/// The names a browser may address a loopback listener by: IP literals, `localhost` and
/// the configured ones. A name that an attacker's DNS points at 127.0.0.1 is none of them.
fn host_allowed<B>(policy: &Policy, req: &Request<B>) -> bool {
    let host = req.headers().get(header::HOST).map(|h| h.to_str().ok());
    let from_uri = req.uri().authority().map(|a| a.as_str().to_owned());
    let names: Vec<Option<String>> = match (host, from_uri) {
        // HTTP/1.0 without a Host: not a browser.
        (None, None) => return true,
        (h, u) => h.map(|h| h.map(str::to_owned)).into_iter().chain(u.map(Some)).collect(),
    };
    names.into_iter().all(|name| {
        let Some((host, _)) = name.as_deref().and_then(split_authority) else {
            return false;
        };
        host.parse::<IpAddr>().is_ok() || host == "localhost" || policy.allowed_hosts.contains(&host)
    })
}

fn is_cross_site(headers: &HeaderMap, policy: &Policy, tls: bool) -> bool {
    let form = headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let media = v.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(media.as_str(), "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain")
    });
    if form {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str().unwrap_or(""), "same-origin" | "none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN) {
        None => false,
        Some(origin) => !same_origin(origin.to_str().unwrap_or(""), headers, policy, tls),
    }
}

/// Whether `origin` names this listener as the request reached it: the scheme it
/// serves and the authority the request was sent to (its `Host`, else the listen
/// address), default ports made explicit.
fn same_origin(origin: &str, headers: &HeaderMap, policy: &Policy, tls: bool) -> bool {
    let scheme = if tls { "https" } else { "http" };
    let default_port = if tls { 443 } else { 80 };
    let Some(rest) = origin.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) else {
        return false;
    };
    let Some((origin_host, origin_port)) = split_authority(rest) else {
        return false;
    };
    let own = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let own = own.unwrap_or_else(|| policy.listen.to_string());
    let Some((own_host, own_port)) = split_authority(&own) else {
        return false;
    };
    origin_host == own_host && origin_port.unwrap_or(default_port) == own_port.unwrap_or(default_port)
}

/// A token bucket shared by every connection: `burst` requests at once, refilled one
/// per `interval`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, state: Mutex::new((f64::from(limit.burst), Instant::now())) }
    }

    fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64()
            / self.limit.interval.max(Duration::from_nanos(1)).as_secs_f64();
        state.0 = (state.0 + refill).min(f64::from(self.limit.burst));
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listen: &str) -> Policy {
        let options = super::super::web::Options {
            allowed_hosts: vec!["Wsprobe.Internal.".into()],
            ..Default::default()
        };
        Policy::new(listen.parse().unwrap(), &options)
    }

    fn req(host: &str) -> Request<()> {
        Request::builder().uri("/metrics").header(header::HOST, host).body(()).unwrap()
    }

    #[test]
    fn a_loopback_listener_answers_only_to_its_own_names() {
        let p = policy("127.0.0.1:9478");
        for ok in [
            "127.0.0.1:9478",
            "localhost:9478",
            "LOCALHOST",
            "[::1]:9478",
            "10.0.0.7",
            "wsprobe.internal:9478",
        ] {
            assert!(host_allowed(&p, &req(ok)), "{ok}");
        }
        for bad in ["evil.example:9478", "localhost.evil.example", "127.0.0.1.nip.io", "", "[::1", "a:b:c"] {
            assert!(!host_allowed(&p, &req(bad)), "{bad}");
        }
    }

    #[test]
    fn the_origin_must_be_the_listeners_own() {
        let p = policy("127.0.0.1:9478");
        let headers = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:9478".parse().unwrap());
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h
        };
        assert!(!is_cross_site(&headers("http://127.0.0.1:9478"), &p, false));
        assert!(is_cross_site(&headers("https://127.0.0.1:9478"), &p, false), "scheme differs");
        assert!(is_cross_site(&headers("http://127.0.0.1:3000"), &p, false), "port differs");
        assert!(is_cross_site(&headers("http://localhost:9478"), &p, false), "host differs");
        assert!(is_cross_site(&headers("null"), &p, false));
    }

    #[test]
    fn form_content_types_are_cross_site() {
        let p = policy("127.0.0.1:9478");
        for ct in [
            "application/x-www-form-urlencoded",
            "Multipart/Form-Data; boundary=x",
            "text/plain;charset=UTF-8",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            assert!(is_cross_site(&h, &p, false), "{ct}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_cross_site(&h, &p, false));
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(is_cross_site(&h, &p, false));
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_one_per_interval() {
        let l = RateLimiter::new(RateLimit { interval: Duration::from_millis(40), burst: 2 });
        assert!(l.allow() && l.allow());
        assert!(!l.allow());
        std::thread::sleep(Duration::from_millis(50));
        assert!(l.allow());
        assert!(!l.allow());
    }
}
