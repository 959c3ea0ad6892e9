//! TLS (rustls): the settings, the client configuration, the handshake and the
//! certificate's expiry.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
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
    /// Accept any certificate. For test rigs only: the probe still measures TLS.
    #[serde(default)]
    pub insecure_skip_verify: bool,
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

/// The probe's connection: plain TCP for ws://, TLS over TCP for wss://.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
            .with_no_client_auth()
    } else {
        let roots = match &settings.ca_file {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                let mut store = RootCertStore::empty();
                for cert in parse_ca_pem(&pem)? {
                    store.add(cert).map_err(|e| format!("`{}`: {e}", path.display()))?;
                }
                Arc::new(store)
            }
            None => system_roots(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Performs the TLS handshake; returns the stream and the leaf certificate's expiry.
pub async fn handshake(
    config: Arc<ClientConfig>,
    server_name: &str,
    tcp: TcpStream,
) -> Result<(Conn, Option<i64>), NetError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        NetError::new(NetErrorKind::Tls, format!("invalid TLS server name `{server_name}`: {e}"))
    })?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| NetError::new(NetErrorKind::Tls, format!("TLS handshake failed: {}", tls_cause(&e))))?;
    let expiry = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp());
    Ok((Conn::Tls(Box::new(stream)), expiry))
}

/// rustls reports certificate problems wrapped in an `io::Error`; show the inner cause.
fn tls_cause(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// Verifier for `insecure_skip_verify`: checks signatures, trusts any certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
