//! Taking apart the URLs the configuration names: `ws://`/`wss://` targets and
//! `http://`/`https://` health checks, breakers and receivers. Errors complete
//! "`<url>` ..." and never echo a port or credentials that may come from a secret.

use tokio_tungstenite::tungstenite::http::Uri;

/// The url with any `user:password@` shown as `***@`, for messages.
pub(crate) fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// A WebSocket URL taken apart for the probe's phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    pub secure: bool,
    /// Host without brackets (IPv6 literals included).
    pub host: String,
    pub port: u16,
    pub uri: Uri,
}

/// Parses and checks a `ws://` or `wss://` URL; the error completes "`<url>` ...".
pub(crate) fn parse_ws_url(s: &str) -> Result<WsUrl, String> {
    let uri: Uri = s.parse().map_err(|e| format!("is not a valid URL ({e})"))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        Some(other) => return Err(format!("must use ws:// or wss://, not {other}://")),
        None => return Err("must be an absolute ws:// or wss:// URL".to_owned()),
    };
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    // `Uri` accepts these, but the handshake would silently drop them.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(
            "has credentials before the host (`user@`), which are never sent; use a header".to_owned()
        );
    }
    if s.contains('#') {
        return Err("has a `#fragment`, which WebSocket URLs cannot have".to_owned());
    }
    // `Uri::port` is `None` for a port that is out of range, so read the authority itself.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    let default_port = if secure { 443 } else { 80 };
    let port = match after_host.rsplit_once(':') {
        None => default_port,
        Some((_, port)) => match port.parse::<u16>() {
            Ok(0) => return Err("has port 0".to_owned()),
            Ok(n) => n,
            // Not echoed: the url may have come from a secret.
            Err(_) => return Err("has an invalid port (must be 1 to 65535)".to_owned()),
        },
    };
    Ok(WsUrl { secure, host, port, uri })
}

/// An `http://` or `https://` URL taken apart for the probe's phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    pub secure: bool,
    /// Host without brackets (IPv6 literals included).
    pub host: String,
    pub port: u16,
    pub uri: Uri,
}

impl HttpUrl {
    /// `scheme://host:port`, to tell whether a redirect leaves the origin.
    pub fn origin(&self) -> (bool, &str, u16) {
        (self.secure, &self.host, self.port)
    }
}

/// Parses and checks an `http://` or `https://` URL; the error completes "`<url>` ...".
pub(crate) fn parse_http_url(s: &str) -> Result<HttpUrl, String> {
    let uri: Uri = s.parse().map_err(|e| format!("is not a valid URL ({e})"))?;
    let secure = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => return Err(format!("must use http:// or https://, not {other}://")),
        None => return Err("must be an absolute http:// or https:// URL".to_owned()),
    };
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let authority = uri.authority().map_or("", |a| a.as_str());
    if authority.contains('@') {
        return Err(
            "has credentials before the host (`user@`), which are never sent; use a header".to_owned()
        );
    }
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    let port = match after_host.rsplit_once(':') {
        None => {
            if secure {
                443
            } else {
                80
            }
        }
        Some((_, port)) => match port.parse::<u16>() {
            Ok(0) => return Err("has port 0".to_owned()),
            Ok(n) => n,
            Err(_) => return Err("has an invalid port (must be 1 to 65535)".to_owned()),
        },
    };
    Ok(HttpUrl { secure, host, port, uri })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let u = parse_ws_url("wss://[::1]:8443/ws?x=1").unwrap();
        assert!(u.secure);
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        assert_eq!(parse_ws_url("ws://example.test/").unwrap().port, 80);
        assert_eq!(parse_ws_url("http://x/").unwrap_err(), "must use ws:// or wss://, not http://");
        // Silently dropped or misread by `Uri`, so refused here.
        assert!(parse_ws_url("ws://x:65536/").unwrap_err().contains("invalid port"));
        assert!(parse_ws_url("ws://u:p@x/").unwrap_err().contains("credentials"));
        assert!(parse_ws_url("ws://x/#f").unwrap_err().contains("fragment"));
        assert_eq!(without_userinfo("wss://u:p@x/a@b"), "wss://***@x/a@b");
    }

    #[test]
    fn http_urls_are_taken_apart() {
        let u = parse_http_url("https://[::1]:8443/health?x=1").unwrap();
        assert!(u.secure);
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        assert_eq!(parse_http_url("http://example.test/").unwrap().port, 80);
        assert_eq!(parse_http_url("https://example.test").unwrap().port, 443);
        assert_eq!(parse_http_url("ws://x/").unwrap_err(), "must use http:// or https://, not ws://");
        assert!(parse_http_url("http://u:p@x/").unwrap_err().contains("credentials"));
        assert!(parse_http_url("http://x:0/").unwrap_err().contains("port 0"));
        assert!(parse_http_url("/relative").unwrap_err().contains("absolute"));
    }
}
