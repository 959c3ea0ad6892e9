//! The listener's rustls server configuration, built from a validated `tls_server_config`:
//! the certificate and key, the protocol versions, cipher suites and curves, and the
//! client-certificate policy (mTLS).
//!
//! The five client-certificate policies of the exporter format map onto rustls as: no
//! request; a request that accepts any certificate or none; a demand for any certificate;
//! verification against `client_ca` when a certificate is given; and a demand for a
//! verified one. Every policy that accepts a certificate still checks the client's
//! signature, so a client must hold the key of the certificate it shows.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::web_config::{ClientAuth, Pem, TlsServer, TlsVersion};
use crate::util::units::ByteSize;

/// Certificate, key and CA files are a few kilobytes; a chain bundle rarely 100.
const PEM_FILE_LIMIT: ByteSize = ByteSize(1024 * 1024);

const AT: &str = "tls_server_config";

/// Builds the server configuration, reading every file it names now. Errors name the
/// field and never quote key material.
pub fn server_config(t: &TlsServer) -> Result<Arc<ServerConfig>, Vec<String>> {
    let mut problems = Vec::new();
    let certs = read(&t.cert, "cert_file", &mut problems).and_then(|pem| {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
        if certs.is_empty() {
            problems.push(format!("{}: holds no PEM certificate", field(&t.cert, "cert", "cert_file")));
            None
        } else {
            Some(certs)
        }
    });
    let key =
        read(&t.key, "key_file", &mut problems).and_then(|pem| match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(key) => Some(key),
            Err(_) => {
                problems.push(format!(
                    "{}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    field(&t.key, "key", "key_file")
                ));
                None
            }
        });
    let roots = t.client_ca.as_ref().and_then(|ca| client_roots(ca, &mut problems));
    let provider = Arc::new(provider(t));
    let verifier = verifier(t, roots, &provider, &mut problems);
    let (Some(certs), Some(key), Some(verifier)) = (certs, key, verifier) else {
        return Err(problems);
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
            .map(|(_, v)| v)
            .collect();
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| vec![format!("{AT}: {e}")])?;
    let mut config =
        builder.with_client_cert_verifier(verifier).with_single_cert(certs, key).map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => "the key does not belong to the certificate".to_owned(),
                other => format!("the certificate and key are not usable together ({other})"),
            };
            vec![format!("{}: {why}", field(&t.key, "key", "key_file"))]
        })?;
    config.ignore_client_order = t.prefer_server_cipher_suites;
    // Only HTTP/1.1 is served; saying so lets HTTP/2-capable clients fall back at once.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn field(pem: &Pem, inline: &str, file: &str) -> String {
    match pem {
        Pem::Inline(_) => format!("{AT}.{inline}"),
        Pem::File(path) => format!("{AT}.{file}: `{}`", path.display()),
    }
}

fn read(pem: &Pem, file: &str, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    match pem {
        Pem::Inline(text) => Some(text.as_bytes().to_vec()),
        Pem::File(path) => match crate::util::files::read_capped(path, PEM_FILE_LIMIT) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                problems.push(format!("{AT}.{file}: cannot read `{}`: {e}", path.display()));
                None
            }
        },
    }
}

fn client_roots(ca: &Pem, problems: &mut Vec<String>) -> Option<Arc<RootCertStore>> {
    let pem = read(ca, "client_ca_file", problems)?;
    let mut roots = RootCertStore::empty();
    let mut bad = 0;
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
        if roots.add(cert).is_err() {
            bad += 1;
        }
    }
    let at = field(ca, "client_ca", "client_ca_file");
    if bad > 0 {
        problems.push(format!("{at}: {bad} certificate(s) are not valid X.509 CA certificates"));
        None
    } else if roots.is_empty() {
        problems.push(format!("{at}: holds no PEM certificate"));
        None
    } else {
        Some(Arc::new(roots))
    }
}

/// ring, narrowed to the configured TLS 1.2 suites and curves.
fn provider(t: &TlsServer) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let all = std::mem::take(&mut provider.cipher_suites);
        let tls13 = all.iter().filter(|s| s.version() == &rustls::version::TLS13).copied();
        let tls12 = t
            .cipher_suites
            .iter()
            .filter_map(|name| all.iter().find(|s| format!("{:?}", s.suite()) == *name).copied());
        provider.cipher_suites = tls13.chain(tls12).collect();
    }
    if !t.curves.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        provider.kx_groups = t
            .curves
            .iter()
            .filter_map(|name| all.iter().find(|g| format!("{:?}", g.name()) == *name).copied())
            .collect();
    }
    provider
}

fn verifier(
    t: &TlsServer,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
    problems: &mut Vec<String>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    let algorithms = provider.signature_verification_algorithms;
    let base: Arc<dyn ClientCertVerifier> = match (t.client_auth, roots) {
        (ClientAuth::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
        (ClientAuth::RequestClientCert, _) => Arc::new(AnyCertificate { mandatory: false, algorithms }),
        (ClientAuth::RequireAnyClientCert, _) => Arc::new(AnyCertificate { mandatory: true, algorithms }),
        (
            auth @ (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert),
            Some(roots),
        ) => {
            let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            if !auth.requires() {
                builder = builder.allow_unauthenticated();
            }
            match builder.build() {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{AT}.client_ca_file: {e}"));
                    return None;
                }
            }
        }
        // Refused by validation already; a missing CA read failure is reported there too.
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => return None,
    };
    Some(match &t.client_allowed_sans {
        Some(sans) => Arc::new(AllowedSans { inner: base, sans: sans.clone() }),
        None => base,
    })
}

/// Accepts any client certificate (the exporter format's `RequestClientCert` and
/// `RequireAnyClientCert`); the handshake signature is still checked.
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepted the certificate, one of its subject
/// alternative names (DNS, e-mail, IP or URI) must be exactly one of `sans`.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity)
            .ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        if names.iter().any(|n| self.sans.contains(n)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificate's DNS, e-mail, IP and URI alternative names as text; `None` if it
/// does not parse.
fn subject_alt_names(cert: &CertificateDer<'_>) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Some(Vec::new());
    };
    let names = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_owned())
            }
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(names)
}
