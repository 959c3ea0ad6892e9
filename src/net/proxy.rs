//! Forward proxies: which proxy a connection goes through (`proxy:` of a target or of
//! `defaults`, or the environment), and the HTTP CONNECT exchange that opens a tunnel.
//!
//! `proxy: http://[user:password@]host:port` (or `https://`, TLS to the proxy itself),
//! `proxy: env` for `https_proxy`/`HTTPS_PROXY` (wss://) or `http_proxy`/`HTTP_PROXY`
//! (ws://) with `no_proxy`/`NO_PROXY`, `proxy: none` to go direct although `defaults` set
//! one. Both ws:// and wss:// are tunnelled with CONNECT, as browsers do: a proxy that
//! forwarded an upgrade request itself would hide the server's own handshake.
//!
//! The exchange is bounded: the answer's head by [`MAX_HEAD`], its time by the caller.
//! Userinfo becomes `Proxy-Authorization: Basic`; it is a secret, never shown, and
//! handed to the caller's redactor.

use std::net::IpAddr;

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::Conn;
use crate::util::template::Template;
use crate::util::text::shown;

/// The largest answer head read from a proxy: far above any real one.
pub const MAX_HEAD: usize = 16 * 1024;

/// Which proxy a target goes through.
#[derive(Clone, Default, PartialEq)]
pub enum ProxySetting {
    /// Connect directly (`none`, or no `proxy` key).
    #[default]
    Direct,
    /// The standard environment variables, read at each probe.
    Env,
    /// This proxy URL; a template, so a password can come from `${VAR}`.
    Url(Template),
}

impl std::fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxySetting::Direct => f.write_str("Direct"),
            ProxySetting::Env => f.write_str("Env"),
            // A password written in the file is a secret too.
            ProxySetting::Url(t) => {
                write!(f, "Url({:?})", crate::util::url::without_userinfo(t.source()))
            }
        }
    }
}

impl<'de> Deserialize<'de> for ProxySetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "env" => ProxySetting::Env,
            "none" => ProxySetting::Direct,
            _ => ProxySetting::Url(Template::parse(&s).map_err(serde::de::Error::custom)?),
        })
    }
}

/// Checks a `proxy` setting the way probes will use it; each problem names `field`.
/// With `env`, the variables set now are checked (the ones a probe would read).
pub(crate) fn check_setting(field: &str, setting: &ProxySetting, problems: &mut Vec<String>) {
    match setting {
        ProxySetting::Direct => {}
        ProxySetting::Url(template) => match template.expand() {
            Err(e) => problems.push(format!("{field}: {e}")),
            Ok(text) => {
                if let Err(why) = parse_proxy_url(&text) {
                    // As written when it has substitutions; never with its credentials.
                    let url = if template.has_substitutions() {
                        shown(template.source())
                    } else {
                        shown(&crate::util::url::without_userinfo(&text))
                    };
                    problems.push(format!("{field}: `{url}` {why}"));
                }
            }
        },
        ProxySetting::Env => {
            for secure in [true, false] {
                let env = |n: &str| std::env::var(n).ok();
                if let Some((name, value)) = from_env(secure, "", 0, &env) {
                    if let Err(why) = parse_proxy_url(&value) {
                        problems.push(format!("{field}: `env`: the proxy url in ${name} {why}"));
                    }
                }
            }
        }
    }
}

/// A proxy taken apart: where to connect and what to send.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// TLS to the proxy itself (`https://`).
    pub secure: bool,
    /// Without brackets (IPv6 literals included).
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` value, when the URL has userinfo.
    pub authorization: Option<String>,
    /// The password and the encoded credentials, for redaction.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "ProxyUrl({})", self.shown())
    }
}

impl ProxyUrl {
    /// `host:port`, how messages name the proxy.
    pub fn shown(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host:port`, brackets around an IPv6 literal.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses a proxy URL; the error completes "`<url>` ..." and never repeats credentials.
pub fn parse_proxy_url(s: &str) -> Result<ProxyUrl, String> {
    let (scheme, rest) =
        s.split_once("://").ok_or("must be an absolute http:// or https:// URL (or `env`, or `none`)")?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        other => return Err(format!("must use http:// or https://, not {}://", shown(other))),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(
            "has a path, query or fragment; a proxy URL is scheme://[user:password@]host:port".to_owned()
        );
    }
    let (userinfo, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    let (host, port_text) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']').ok_or("has an unclosed `[` in its host")?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)) {
        return Err("has an invalid host".to_owned());
    }
    let port = match port_text {
        None => {
            if secure {
                443
            } else {
                80
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err("has an invalid port (must be 1 to 65535)".to_owned()),
        },
    };
    let mut secrets = Vec::new();
    let authorization = match userinfo {
        None => None,
        Some(info) => {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let user =
                percent_decode(user).ok_or("has a user name that is not valid percent-encoded UTF-8")?;
            let password =
                percent_decode(password).ok_or("has a password that is not valid percent-encoded UTF-8")?;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            secrets.push(password);
            secrets.push(token.clone());
            Some(format!("Basic {token}"))
        }
    };
    Ok(ProxyUrl { secure, host: host.to_ascii_lowercase(), port, authorization, secrets })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The environment variable and value that name the proxy for a connection to
/// `host:port`, or `None` to go direct (unset, empty, or excluded by `no_proxy`).
/// The lower-case spelling wins, as in curl and most tools.
pub fn from_env(
    secure: bool,
    host: &str,
    port: u16,
    var: &dyn Fn(&str) -> Option<String>,
) -> Option<(&'static str, String)> {
    let get = |names: [&'static str; 2]| {
        names.into_iter().find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let names = if secure { ["https_proxy", "HTTPS_PROXY"] } else { ["http_proxy", "HTTP_PROXY"] };
    let (name, value) = get(names)?;
    if let Some((_, list)) = get(["no_proxy", "NO_PROXY"]) {
        if bypasses(&list, host, port) {
            return None;
        }
    }
    Some((name, value.trim().to_owned()))
}

/// Whether `no_proxy` excludes `host:port`: `*`, a host and its subdomains (`example.com`,
/// `.example.com`), an IP address or a CIDR block, each optionally with `:port`.
pub fn bypasses(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = split_entry_port(entry);
        if entry_port.is_some_and(|p| p != port) {
            return false;
        }
        let name = name.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        let name = name.to_ascii_lowercase();
        if let Some((net, bits)) = name.split_once('/') {
            return in_cidr(&host, net, bits);
        }
        host == name || host.ends_with(&format!(".{name}"))
    })
}

fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(inner) = entry.strip_prefix('[') {
        if let Some((h, after)) = inner.split_once(']') {
            return (h, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match entry.rsplit_once(':') {
        // An IPv6 literal without brackets has several colons and no port.
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (entry, None),
    }
}

fn in_cidr(host: &str, net: &str, bits: &str) -> bool {
    let (Ok(host), Ok(net), Ok(bits)) = (host.parse::<IpAddr>(), net.parse::<IpAddr>(), bits.parse::<u32>())
    else {
        return false;
    };
    let (h, n, width) = match (host, net) {
        (IpAddr::V4(h), IpAddr::V4(n)) => (u128::from(u32::from(h)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(h), IpAddr::V6(n)) => (u128::from(h), u128::from(n), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= 128 || (h >> shift) == (n >> shift)
}

/// A proxy that would not open the tunnel: why, and its status if it answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TunnelError {
    pub message: String,
    pub status: Option<u16>,
}

impl TunnelError {
    fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), status: None }
    }
}

/// Asks the proxy on `conn` for a tunnel to `target` (`host:port`); returns the tunnel.
/// The caller bounds the time.
pub async fn connect_tunnel(mut conn: Conn, proxy: &ProxyUrl, target: &str) -> Result<Conn, TunnelError> {
    let mut request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: wsprobe/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let shown_proxy = proxy.shown();
    let lost = |e: std::io::Error| {
        TunnelError::new(format!("the connection to the proxy {shown_proxy} failed: {e}"))
    };
    conn.write_all(request.as_bytes()).await.map_err(lost)?;
    conn.flush().await.map_err(lost)?;

    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        let n = conn.read(&mut chunk).await.map_err(lost)?;
        if n == 0 {
            return Err(TunnelError::new(format!(
                "the proxy {shown_proxy} closed the connection before answering CONNECT{}",
                if head.is_empty() { String::new() } else { format!(" ({} bytes of an answer)", head.len()) }
            )));
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + at + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(TunnelError::new(format!(
                "the proxy {shown_proxy} answered CONNECT with a head larger than {} KiB",
                MAX_HEAD / 1024
            )));
        }
    };
    let status = parse_status(&head[..end]).ok_or_else(|| {
        let line = String::from_utf8_lossy(&head[..end.min(200)]);
        let line = line.lines().next().unwrap_or_default();
        TunnelError::new(format!(
            "the proxy {shown_proxy} answered CONNECT with something that is not HTTP: `{}`",
            shown(&crate::util::text::excerpt(line, 60))
        ))
    })?;
    let name = hyper::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let with_status = |message: String| TunnelError { message, status: Some(status) };
    match status {
        200..=299 if head.len() > end => Err(with_status(format!(
            "the proxy {shown_proxy} sent {} bytes after its HTTP {status} answer, before the tunnel \
             was used: it does not pass the tunnel through faithfully",
            head.len() - end
        ))),
        200..=299 => Ok(conn),
        // 407 is the proxy's own status; some (tinyproxy) answer a CONNECT with 401.
        401 | 407 => Err(with_status(format!(
            "the proxy {shown_proxy} requires authentication (HTTP {status} {name}); {}",
            if proxy.authorization.is_some() {
                "it refused the credentials of the proxy URL"
            } else {
                "give them in the proxy URL (http://user:password@host:port)"
            }
        ))),
        _ => Err(with_status(
            format!("the proxy {shown_proxy} refused the tunnel to {target} with HTTP {status} {name}")
                .trim_end()
                .to_owned(),
        )),
    }
}

/// The status of an answer head that starts `HTTP/1.x NNN`.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !(version == "HTTP/1.1" || version == "HTTP/1.0") {
        return None;
    }
    let code = parts.next().filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))?;
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_taken_apart() {
        let p = parse_proxy_url("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.secure, p.host.as_str(), p.port, p.authorization.as_deref()),
            (false, "proxy.corp", 3128, None)
        );
        let p = parse_proxy_url("https://u%40x:p%3Ass@[::1]/").unwrap();
        assert_eq!((p.secure, p.host.as_str(), p.port), (true, "::1", 443));
        let expected = base64::engine::general_purpose::STANDARD.encode("u@x:p:ss");
        assert_eq!(p.authorization.as_deref(), Some(format!("Basic {expected}").as_str()));
        assert!(p.secrets.contains(&"p:ss".to_owned()));
        assert!(!format!("{p:?}").contains("ss"), "{p:?}");
        assert!(parse_proxy_url("http://proxy:3128/path").unwrap_err().contains("path"));
        assert!(parse_proxy_url("socks5://proxy:1080").unwrap_err().contains("not socks5://"));
        assert!(parse_proxy_url("proxy:3128").unwrap_err().contains("absolute"));
        assert!(parse_proxy_url("http://proxy:0").unwrap_err().contains("port"));
        assert!(parse_proxy_url("http://:3128").unwrap_err().contains("no host"));
    }

    #[test]
    fn debug_output_hides_credentials() {
        let setting = ProxySetting::Url(Template::parse("http://u:literal-pass@proxy:3128").unwrap());
        assert_eq!(format!("{setting:?}"), r#"Url("http://***@proxy:3128")"#);
    }

    #[test]
    fn no_proxy_entries_match_hosts_domains_addresses_and_ports() {
        assert!(bypasses("*", "any.test", 1));
        assert!(bypasses("example.com", "example.com", 443));
        assert!(bypasses("example.com", "api.example.com", 443));
        assert!(bypasses(".example.com", "api.example.com", 443));
        assert!(!bypasses("example.com", "badexample.com", 443));
        assert!(bypasses(" other.test , 127.0.0.1", "127.0.0.1", 8080));
        assert!(bypasses("10.0.0.0/8", "10.1.2.3", 80));
        assert!(!bypasses("10.0.0.0/8", "11.1.2.3", 80));
        assert!(bypasses("example.com:8443", "example.com", 8443));
        assert!(!bypasses("example.com:8443", "example.com", 443));
        assert!(bypasses("::1", "::1", 80));
        assert!(bypasses("[::1]:80", "::1", 80));
    }

    #[test]
    fn the_environment_names_the_proxy_per_scheme() {
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some("http://secure-proxy:1".to_owned()),
            "http_proxy" => Some("http://plain-proxy:2".to_owned()),
            "HTTP_PROXY" => Some("http://ignored:3".to_owned()),
            "NO_PROXY" => Some("internal.test".to_owned()),
            _ => None,
        };
        assert_eq!(
            from_env(true, "x.test", 443, &env).unwrap(),
            ("HTTPS_PROXY", "http://secure-proxy:1".to_owned())
        );
        assert_eq!(
            from_env(false, "x.test", 80, &env).unwrap(),
            ("http_proxy", "http://plain-proxy:2".to_owned())
        );
        assert_eq!(from_env(true, "a.internal.test", 443, &env), None);
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(parse_status(b"HTTP/1.1 200 Connection established\r\n\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n"), Some(407));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20 x\r\n\r\n"), None);
    }
}
