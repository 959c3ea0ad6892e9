//! The `--web.config.file` format shared by Prometheus exporters: parsing and validation.
//!
//! A file written for an exporter must work here unchanged, so the keys and their meaning
//! follow that format: `tls_server_config`, `http_server_config`, `basic_auth_users` and
//! `rate_limit`, unknown keys refused as the exporters refuse them, relative paths taken
//! from the file's own directory. What rustls cannot do (TLS 1.0 and 1.1, CBC cipher
//! suites, the P-521 curve) is refused by name rather than silently ignored.
//!
//! Nothing secret reaches a message: password hashes and inline keys are read as opaque
//! YAML values and only their position is ever reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::util::units::ByteSize;

/// A web configuration file is a few lines; anything bigger is a mistake.
const MAX_FILE_SIZE: ByteSize = ByteSize(64 * 1024);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    /// Opaque: a wrong shape must not echo a hash.
    basic_auth_users: Option<serde_norway::Value>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    /// Opaque: a wrong shape must not echo key material.
    key: Option<serde_norway::Value>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility; the listener speaks HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<String>,
    burst: Option<u32>,
}

/// A validated web configuration. Files it names are read when the TLS configuration is
/// built ([`super::tls`]), so a reload picks up rotated certificates.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsServer>,
    /// User name and bcrypt hash, in file order.
    pub users: Vec<(String, String)>,
    /// Response headers added to every answer.
    pub headers: Vec<(&'static str, String)>,
    pub rate_limit: Option<RateLimit>,
}

/// User names only: the hashes stay out of any debug output.
impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebConfig")
            .field("tls", &self.tls)
            .field("users", &users)
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// PEM text given inline or by file.
#[derive(Clone)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Who must present a client certificate, and whether it is checked against `client_ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA.
    RequireAnyClientCert,
    /// Verified when given.
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: [(&'static str, Self); 6] = [
        ("NoClientCert", Self::NoClientCert),
        ("RequestClientCert", Self::RequestClientCert),
        ("RequireAnyClientCert", Self::RequireAnyClientCert),
        // The older spelling exporters still accept.
        ("RequireClientCert", Self::RequireAnyClientCert),
        ("VerifyClientCertIfGiven", Self::VerifyClientCertIfGiven),
        ("RequireAndVerifyClientCert", Self::RequireAndVerifyClientCert),
    ];

    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert)
    }

    pub fn requires(self) -> bool {
        matches!(self, Self::RequireAnyClientCert | Self::RequireAndVerifyClientCert)
    }
}

/// TLS versions rustls serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The `tls_server_config` block, validated.
#[derive(Debug, Clone)]
pub struct TlsServer {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites by rustls name, in preference order; empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    /// Key exchange groups by rustls name, in preference order; empty: the defaults.
    pub curves: Vec<String>,
}

/// A token bucket: one request per `interval`, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

/// Response headers a web configuration may set, with the values allowed where the
/// header's values are a closed set.
const HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// TLS 1.2 cipher suites rustls offers, by the names exporters' files use (both
/// spellings of the ChaCha20 suites). TLS 1.3 suites are always on and not configurable.
const CIPHER_SUITES: [(&str, &str); 8] = [
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
];

const TLS13_SUITES: [&str; 3] =
    ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// Suites exporters accept that rustls deliberately does not implement.
const REFUSED_SUITES: [&str; 14] = [
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
];

/// Curves by the names exporters' files use, and rustls' name for each.
const CURVES: [(&str, &str); 3] =
    [("X25519", "X25519"), ("CurveP256", "secp256r1"), ("CurveP384", "secp384r1")];

/// Reads and validates the web configuration at `path`; every problem names the field.
pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
    let fail = |problems: Vec<String>| ConfigError { file: path.to_owned(), problems };
    let bytes = crate::util::files::read_capped(path, MAX_FILE_SIZE)
        .map_err(|e| fail(vec![format!("cannot read the web configuration: {e}")]))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(vec!["the file is not UTF-8 text".to_owned()]))?;
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    parse(dir, &text).map_err(fail)
}

/// Parses web configuration text; relative paths are taken from `dir`.
pub fn parse(dir: &Path, text: &str) -> Result<WebConfig, Vec<String>> {
    // An empty file is a valid configuration that turns nothing on.
    if text.trim().is_empty() {
        return Ok(WebConfig::default());
    }
    let raw: RawWebConfig = serde_norway::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let tls = raw.tls_server_config.and_then(|t| tls(dir, t, &mut problems));
    let users = raw.basic_auth_users.map(|u| users(u, &mut problems)).unwrap_or_default();
    let headers =
        raw.http_server_config.and_then(|h| h.headers).map(|h| headers(h, &mut problems)).unwrap_or_default();
    let rate_limit = raw.rate_limit.and_then(|r| rate_limit(r, &mut problems));
    if problems.is_empty() {
        Ok(WebConfig { tls, users, headers, rate_limit })
    } else {
        Err(problems)
    }
}

fn tls(dir: &Path, t: RawTls, problems: &mut Vec<String>) -> Option<TlsServer> {
    let at = "tls_server_config";
    let enabled = t.cert.is_some()
        || t.key.is_some()
        || t.client_ca.is_some()
        || t.cert_file.as_deref().is_some_and(|s| !s.is_empty())
        || t.key_file.as_deref().is_some_and(|s| !s.is_empty())
        || t.client_ca_file.as_deref().is_some_and(|s| !s.is_empty())
        || t.client_auth_type.as_deref().is_some_and(|s| !s.is_empty());
    let before = problems.len();
    // Relative to the web configuration's own directory, as exporters read them.
    let file = |value: Option<String>| value.filter(|v| !v.is_empty()).map(|v| dir.join(v));
    let pem = |inline: Option<String>,
               path: Option<PathBuf>,
               inline_key: &str,
               file_key: &str,
               p: &mut Vec<String>| {
        match (inline.filter(|s| !s.is_empty()), path) {
            (Some(_), Some(_)) => {
                p.push(format!("{at}: give `{inline_key}` or `{file_key}`, not both"));
                None
            }
            (Some(text), None) => Some(Pem::Inline(text)),
            (None, Some(path)) => Some(Pem::File(path)),
            (None, None) => None,
        }
    };
    let cert_file = file(t.cert_file);
    let key_file = file(t.key_file);
    let ca_file = file(t.client_ca_file);
    let inline_key = match t.key {
        None => None,
        Some(serde_norway::Value::String(s)) => Some(s),
        Some(_) => {
            problems.push(format!("{at}.key: must be a string holding a PEM private key"));
            None
        }
    };
    let cert = pem(t.cert, cert_file, "cert", "cert_file", problems);
    let key = pem(inline_key, key_file, "key", "key_file", problems);
    let client_ca = pem(t.client_ca, ca_file, "client_ca", "client_ca_file", problems);
    if enabled && cert.is_none() && problems.len() == before {
        problems.push(format!("{at}.cert_file: required to serve TLS (or give `cert` inline)"));
    }
    if enabled && key.is_none() && problems.len() == before {
        problems.push(format!("{at}.key_file: required to serve TLS (or give `key` inline)"));
    }

    // `None`: invalid, already reported; the checks that depend on it are skipped.
    let client_auth = match t.client_auth_type.as_deref().filter(|s| !s.is_empty()) {
        None => Some(ClientAuth::NoClientCert),
        Some(name) => {
            let found = ClientAuth::NAMES.iter().find(|(n, _)| *n == name).map(|(_, auth)| *auth);
            if found.is_none() {
                problems.push(format!(
                    "{at}.client_auth_type: `{}` is not one of NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
                    crate::util::text::shown(name)
                ));
            }
            found
        }
    };
    if let Some(client_auth) = client_auth {
        if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
            problems.push(format!(
                "{at}.client_auth_type: a client CA is configured but no client certificate is asked for; \
                 set RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
            ));
        }
        if client_auth.verifies() && client_ca.is_none() {
            problems.push(format!(
                "{at}.client_ca_file: required with client_auth_type {} (the CA client certificates must chain to)",
                if client_auth.requires() { "RequireAndVerifyClientCert" } else { "VerifyClientCertIfGiven" }
            ));
        }
        if t.client_allowed_sans.is_some() && !client_auth.requires() {
            problems.push(format!(
                "{at}.client_allowed_sans: needs client_auth_type RequireAnyClientCert or \
                 RequireAndVerifyClientCert, or a client could connect without a certificate to match"
            ));
        }
    }

    let version =
        |key: &str, value: Option<String>, default: TlsVersion, p: &mut Vec<String>| match value.as_deref() {
            None | Some("") => default,
            Some("TLS12") => TlsVersion::Tls12,
            Some("TLS13") => TlsVersion::Tls13,
            Some("TLS10" | "TLS11") => {
                p.push(format!("{at}.{key}: TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13"));
                default
            }
            Some(other) => {
                p.push(format!(
                    "{at}.{key}: `{}` is not a TLS version; use TLS12 or TLS13",
                    crate::util::text::shown(other)
                ));
                default
            }
        };
    let min_version = version("min_version", t.min_version, TlsVersion::Tls12, problems);
    let max_version = version("max_version", t.max_version, TlsVersion::Tls13, problems);
    if min_version > max_version {
        problems.push(format!("{at}.min_version: TLS13 is above max_version TLS12"));
    }

    let mut cipher_suites = Vec::new();
    for (i, name) in t.cipher_suites.unwrap_or_default().iter().enumerate() {
        if let Some((_, rustls_name)) = CIPHER_SUITES.iter().find(|(n, _)| n == name) {
            if !cipher_suites.iter().any(|s| s == rustls_name) {
                cipher_suites.push((*rustls_name).to_owned());
            }
        } else if TLS13_SUITES.contains(&name.as_str()) {
            // Listed by some files; TLS 1.3 suites are always enabled, as with exporters.
        } else if REFUSED_SUITES.contains(&name.as_str()) {
            problems.push(format!(
                "{at}.cipher_suites[{i}]: `{name}` is not supported by wsprobe's TLS library (rustls); \
                 supported: {}",
                supported_suites()
            ));
        } else {
            problems.push(format!(
                "{at}.cipher_suites[{i}]: `{}` is not a cipher suite name; supported: {}",
                crate::util::text::shown(name),
                supported_suites()
            ));
        }
    }
    let mut curves = Vec::new();
    for (i, name) in t.curve_preferences.unwrap_or_default().iter().enumerate() {
        match CURVES.iter().find(|(n, _)| n == name) {
            Some((_, rustls_name)) => curves.push((*rustls_name).to_owned()),
            None if name == "CurveP521" => problems.push(format!(
                "{at}.curve_preferences[{i}]: CurveP521 is not supported by wsprobe's TLS library (rustls); \
                 supported: X25519, CurveP256, CurveP384"
            )),
            None => problems.push(format!(
                "{at}.curve_preferences[{i}]: `{}` is not a curve name; supported: X25519, CurveP256, CurveP384",
                crate::util::text::shown(name)
            )),
        }
    }
    if !enabled || problems.len() != before {
        return None;
    }
    Some(TlsServer {
        cert: cert?,
        key: key?,
        client_ca,
        client_auth: client_auth?,
        client_allowed_sans: t.client_allowed_sans,
        min_version,
        max_version,
        cipher_suites,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curves,
    })
}

fn supported_suites() -> String {
    CIPHER_SUITES.iter().filter(|(n, r)| n == r).map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

fn users(value: serde_norway::Value, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let at = "basic_auth_users";
    let map = match value {
        serde_norway::Value::Mapping(m) => m,
        serde_norway::Value::Null => return Vec::new(),
        _ => {
            problems.push(format!("{at}: must map user names to bcrypt hashes"));
            return Vec::new();
        }
    };
    let mut users = Vec::new();
    for (i, (name, hash)) in map.into_iter().enumerate() {
        let name = match name {
            serde_norway::Value::String(s) => s,
            _ => {
                problems.push(format!("{at}: entry {i}: the user name must be a string"));
                continue;
            }
        };
        let shown = crate::util::text::shown(&name);
        if name.contains(':') {
            problems.push(format!("{at}.{shown}: a user name cannot contain `:` (basic auth splits on it)"));
            continue;
        }
        match hash {
            serde_norway::Value::String(h) if h.parse::<bcrypt::HashParts>().is_ok() => users.push((name, h)),
            _ => problems.push(format!(
                "{at}.{shown}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )),
        }
    }
    users
}

fn headers(headers: BTreeMap<String, String>, problems: &mut Vec<String>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let at = format!("http_server_config.headers.{}", crate::util::text::shown(&name));
        let Some((known, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            problems.push(format!("{at}: cannot be configured; allowed: {}", names.join(", ")));
            continue;
        };
        // Blank means unset, as for exporters.
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            problems.push(format!(
                "{at}: `{}` is not one of {}",
                crate::util::text::shown(&value),
                allowed.join(", ")
            ));
            continue;
        }
        if axum::http::HeaderValue::from_str(&value).is_err() {
            problems.push(format!("{at}: the value holds characters a header cannot carry"));
            continue;
        }
        out.push((*known, value));
    }
    out
}

fn rate_limit(r: RawRateLimit, problems: &mut Vec<String>) -> Option<RateLimit> {
    let interval = match r.interval.as_deref() {
        None | Some("" | "0") => Duration::ZERO,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(_) => {
                problems.push(format!(
                    "rate_limit.interval: `{}` is not a duration (e.g. 1s, 100ms)",
                    crate::util::text::shown(text)
                ));
                return None;
            }
        },
    };
    if interval.is_zero() {
        return None;
    }
    let burst = r.burst.unwrap_or(0);
    if burst == 0 {
        problems.push(
            "rate_limit.burst: must be at least 1 when `interval` is set (0 refuses every request)"
                .to_owned(),
        );
        return None;
    }
    Some(RateLimit { interval, burst })
}
