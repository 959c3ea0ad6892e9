//! Credentials of a receiver URL: `http://user:pass@host:9093` is how people write a
//! password-protected Alertmanager, but the userinfo must travel as an `Authorization:
//! Basic` header (HTTP sends only `host:port` as `Host`), and must never be shown.

use base64::Engine as _;

/// A receiver URL split into what is sent and what is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The URL without its userinfo.
    pub url: String,
    /// `Basic base64(user:pass)`, when the URL had userinfo.
    pub authorization: Option<String>,
    /// The decoded `user:pass` and password, for redaction.
    pub secrets: Vec<String>,
}

/// Takes the userinfo out of `url` (percent-decoded, as RFC 3986 writes it).
pub fn split(url: &str) -> Split {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Split { url: url.to_owned(), authorization: None, secrets: Vec::new() };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Split { url: url.to_owned(), authorization: None, secrets: Vec::new() };
    };
    let decoded = percent_decode(userinfo);
    let password = decoded.split_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default();
    let basic = base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes());
    Split {
        url: format!("{scheme}://{host}{tail}"),
        authorization: Some(format!("Basic {basic}")),
        secrets: vec![decoded, password, userinfo.to_owned(), basic],
    }
}

/// `url` with any userinfo replaced by `***`, for logs and error messages.
pub fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_becomes_basic_authorization() {
        let s = split("http://am:p%40ss@127.0.0.1:9093/prefix");
        assert_eq!(s.url, "http://127.0.0.1:9093/prefix");
        // base64("am:p@ss")
        assert_eq!(s.authorization.as_deref(), Some("Basic YW06cEBzcw=="));
        assert!(s.secrets.contains(&"p@ss".to_owned()));
        let plain = split("https://hooks.example/x?a=b@c");
        assert_eq!(plain.url, "https://hooks.example/x?a=b@c");
        assert_eq!(plain.authorization, None);
    }

    #[test]
    fn shown_urls_hide_userinfo() {
        assert_eq!(shown("http://am:secret@host:9093/x"), "http://***@host:9093/x");
        assert_eq!(shown("http://host:9093/x@y"), "http://host:9093/x@y");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
