//! TLS (rustls): the settings, the client configuration, the handshake and the
//! certificate's expiry. How the server's certificate is judged is in [`super::pin`],
//! the client certificate in [`super::client_cert`].

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{NetError, NetErrorKind};

/// How a TLS connection is verified: `tls` of a target, health check or remote breaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of CA certificates to trust instead of the system store.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against (and send as SNI) instead of the URL's host.
    pub server_name: Option<String>,
    /// Do not verify the certificate's chain and name. Without `pin_sha256`, any
    /// certificate is accepted (for test rigs: the probe still measures TLS); with it,
    /// the pinned keys alone decide.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// PEM certificate (chain) presented when the server asks for a client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Accepted keys of the server certificate: base64 SHA-256 of its SubjectPublicKeyInfo
    /// (HPKP `pin-sha256`). Checked on top of chain verification.
    #[serde(default)]
    pub pin_sha256: Vec<String>,
}

/// Checks `tls` settings the way they will be used, so a bad CA file or name fails at
/// validation; each problem names `{here}.tls.<field>`.
pub(crate) fn check_settings(here: &str, tls: &TlsSettings, problems: &mut Vec<String>) {
    if let Some(ca) = &tls.ca_file {
        if let Err(why) = check_ca_file(ca) {
            problems.push(format!("{here}.tls.ca_file: {why}"));
        }
    }
    if let Some(name) = &tls.server_name {
        if ServerName::try_from(name.as_str()).is_err() {
            problems.push(format!(
                "{here}.tls.server_name: `{}` is not a valid DNS name or IP address",
                crate::util::text::shown(name)
            ));
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            if let Err(e) = super::client_cert::load(cert, key) {
                let (field, why) = e.field();
                problems.push(format!("{here}.tls.{field}: {why}"));
            }
        }
        (Some(_), None) => problems.push(format!("{here}.tls.key_file: required with `cert_file`")),
        (None, Some(_)) => problems.push(format!("{here}.tls.cert_file: required with `key_file`")),
        (None, None) => {}
    }
    for (i, pin) in tls.pin_sha256.iter().enumerate() {
        if let Err(why) = super::pin::parse_pin(pin) {
            problems.push(format!("{here}.tls.pin_sha256[{i}]: {why}"));
        }
    }
}

/// The largest CA file read: the bound of a configuration file, far above any bundle.
const CA_FILE_LIMIT: crate::util::units::ByteSize = crate::util::units::ByteSize::mib(4);

/// Reads a CA file the way the probe will, so a bad one fails here rather than at the
/// first probe; the error completes "`tls.ca_file`: ...".
pub(crate) fn check_ca_file(ca: &Path) -> Result<(), String> {
    let shown_ca = crate::util::text::shown(&ca.display().to_string());
    let pem = crate::util::files::read_capped(ca, CA_FILE_LIMIT)
        .map_err(|e| format!("cannot read `{shown_ca}`: {e}"))?;
    let certs = parse_ca_pem(&pem).map_err(|_| format!("`{shown_ca}` holds no PEM certificate"))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in certs {
        // rustls calls every bad certificate a "peer certificate": say it plainly instead.
        store.add(cert).map_err(|_| format!("`{shown_ca}` holds a certificate that is not valid X.509"))?;
    }
    Ok(())
}

/// The probe's connection: plain TCP for ws://, TLS for wss://, over TCP or over a
/// proxy's tunnel (itself TCP, or TLS to an `https://` proxy).
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<Conn>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Parses a PEM bundle into certificates; an error when it holds none.
pub(crate) fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found".to_owned());
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system trust store, loaded once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("No system CA certificates found; wss:// targets need `tls.ca_file`.");
            }
            Arc::new(store)
        })
        .clone()
}

/// Builds the rustls client configuration for one target.
///
/// Session resumption is off so every probe performs, and times, a full handshake.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let pins = settings
        .pin_sha256
        .iter()
        .map(|p| super::pin::parse_pin(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| format!("tls.pin_sha256: {why}"))?;
    let (roots, exact) = if settings.insecure_skip_verify {
        (None, Vec::new())
    } else {
        match &settings.ca_file {
            Some(path) => {
                let certs = read_ca_file(path)?;
                let mut store = RootCertStore::empty();
                for cert in &certs {
                    store.add(cert.clone()).map_err(|e| format!("`{}`: {e}", path.display()))?;
                }
                (Some(Arc::new(store)), certs)
            }
            None => (Some(system_roots()), Vec::new()),
        }
    };
    let verifier = super::pin::Verifier::new(roots, exact, pins, provider())?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            builder.with_client_cert_resolver(Arc::new(super::client_cert::ClientIdentity::new(cert, key)?))
        }
        _ => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration for the TLS connection to an `https://` proxy: the system store and
/// the target's `ca_file` are trusted (a corporate proxy's CA is usually in the first, a
/// test rig's in the second); `insecure_skip_verify` applies; pins and the client
/// certificate are the server's, not the proxy's.
pub fn proxy_client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if settings.insecure_skip_verify {
        let verifier = super::pin::Verifier::new(None, Vec::new(), Vec::new(), provider())?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let mut store = (*system_roots()).clone();
        if let Some(path) = &settings.ca_file {
            store.add_parsable_certificates(read_ca_file(path)?);
        }
        builder.with_root_certificates(store)
    };
    let mut config = builder.with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = crate::util::files::read_capped(path, CA_FILE_LIMIT)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    parse_ca_pem(&pem)
}

/// Performs the TLS handshake over TCP; returns the stream and the leaf certificate's
/// expiry.
pub async fn handshake(
    config: Arc<ClientConfig>,
    server_name: &str,
    tcp: TcpStream,
) -> Result<(Conn, Option<i64>), NetError> {
    handshake_over(config, server_name, Conn::Plain(tcp)).await
}

/// [`handshake`] over any connection: a proxy's tunnel, itself TLS to an https:// proxy.
pub async fn handshake_over(
    config: Arc<ClientConfig>,
    server_name: &str,
    transport: Conn,
) -> Result<(Conn, Option<i64>), NetError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        NetError::new(NetErrorKind::Tls, format!("invalid TLS server name `{server_name}`: {e}"))
    })?;
    let stream = TlsConnector::from(config).connect(name, transport).await.map_err(|e| {
        let kind = if is_not_tls(&e) { NetErrorKind::NotTls } else { NetErrorKind::Tls };
        NetError::new(kind, format!("TLS handshake failed: {}", tls_cause(&e)))
    })?;
    let expiry = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp());
    Ok((Conn::Tls(Box::new(stream)), expiry))
}

/// rustls reports certificate problems wrapped in an `io::Error`; show the inner cause,
/// and our own verifier's sentences (a pin mismatch) as they are.
fn tls_cause(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::Other(other)) => other.0.to_string(),
            _ => inner.to_string(),
        },
        None => e.to_string(),
    }
}

/// Whether the peer answered with something that is not TLS at all (an HTTP error page,
/// a proxy's garbage), rather than a TLS refusal.
fn is_not_tls(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidMessage(_))
    )
}

/// The refusal of a server that ended the session with a TLS alert once the handshake
/// was over, as TLS 1.3 servers answer a missing or refused client certificate: the
/// client's side of the handshake is complete before the server has judged its
/// certificate, so the verdict arrives with the first read. `None` for any other error.
pub fn alert_after_handshake(e: &io::Error) -> Option<NetError> {
    let Some(rustls::Error::AlertReceived(alert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return None;
    };
    let name = alert_name(*alert);
    let message = match alert {
        // Sent, by definition, when a certificate is required and none came.
        AlertDescription::CertificateRequired => format!(
            "the server requires a client certificate and none was sent (TLS alert `{name}` after the \
             handshake); set tls.cert_file and tls.key_file"
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateRevoked
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnknownCA
        | AlertDescription::AccessDenied
        | AlertDescription::HandshakeFailure => format!(
            "the server refused the TLS session after the handshake (TLS alert `{name}`): it requires a \
             client certificate, or refused the one sent (tls.cert_file)"
        ),
        _ => format!("the server ended the TLS session after the handshake (TLS alert `{name}`)"),
    };
    Some(NetError::new(NetErrorKind::Tls, message))
}

/// An alert's name as the TLS specifications write it: `certificate_required`.
fn alert_name(alert: AlertDescription) -> String {
    let camel = format!("{alert:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    let mut previous_upper = true;
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            // A run of capitals is one word: `UnknownCA` is `unknown_ca`.
            if !previous_upper {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
        previous_upper = c.is_ascii_uppercase();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_named_as_in_the_rfcs() {
        assert_eq!(alert_name(AlertDescription::CertificateRequired), "certificate_required");
        assert_eq!(alert_name(AlertDescription::BadCertificate), "bad_certificate");
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
    }
}
