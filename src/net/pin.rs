//! How a server's certificate is judged: the chain check against the trusted roots, a
//! certificate trusted because it is exactly one of `ca_file`'s, and key pins.
//!
//! A self-signed certificate made with `openssl req -x509` carries `CA:TRUE`, and the
//! chain check refuses a CA certificate presented as the server's own
//! (`CaUsedAsEndEntity`). Trusting it is what its owner means by putting it in
//! `ca_file`, so a server certificate byte-for-byte equal to one of the file's is
//! accepted when it is valid now and names the host, without a chain.
//!
//! Pins (`pin_sha256`, HPKP's `pin-sha256` form: base64 of the SHA-256 of the
//! certificate's SubjectPublicKeyInfo) are checked against the server certificate's own
//! key, on top of the chain check; with `insecure_skip_verify` they replace it, so the
//! key alone decides (as curl's `--pinnedpubkey` with `-k`).

use std::sync::Arc;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// A SHA-256 digest of a SubjectPublicKeyInfo.
pub(crate) type Pin = [u8; 32];

/// Parses one `pin_sha256` entry: standard base64 of 32 bytes (44 characters with `=`).
/// The error completes "`tls.pin_sha256[i]`: ...".
pub(crate) fn parse_pin(text: &str) -> Result<Pin, String> {
    let shown = crate::util::text::shown(text);
    if text.starts_with("sha256/") {
        return Err(format!("`{shown}`: write the base64 digest alone, without `sha256/`"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| format!("`{shown}` is not base64 (a pin is the base64 of a SHA-256 digest)"))?;
    Pin::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "`{shown}` decodes to {} bytes; a SHA-256 pin is 32 bytes (44 base64 characters)",
            bytes.len()
        )
    })
}

/// The pin of a certificate's key, as `pin_sha256` writes it.
pub(crate) fn spki_pin(cert: &CertificateDer<'_>) -> Result<Pin, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    Ok(pin)
}

fn pin_text(pin: &Pin) -> String {
    base64::engine::general_purpose::STANDARD.encode(pin)
}

/// The server certificate's key matched no pin.
#[derive(Debug, thiserror::Error)]
#[error("the server's key (pin_sha256 `{0}`) matches none of tls.pin_sha256")]
struct PinMismatch(String);

/// The server certificate verifier of every wsprobe TLS client.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// The chain check; `None` with `insecure_skip_verify` (pins, if any, still apply).
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// `ca_file`'s certificates, accepted as the server's own when presented exactly.
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<Pin>,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// A verifier checking chains to `roots` (none: trust nothing but the pins), accepting
    /// `exact` certificates as they are, and requiring one of `pins` when any is given.
    pub(crate) fn new(
        roots: Option<Arc<RootCertStore>>,
        exact: Vec<CertificateDer<'static>>,
        pins: Vec<Pin>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let chain = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("cannot build the certificate verifier: {e}"))?,
            ),
            None => None,
        };
        Ok(Self { chain, exact, pins, provider })
    }

    /// The check for a certificate that is exactly one of `ca_file`'s: trusted as such,
    /// so only its dates and its names are checked.
    fn verify_exact(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if now_secs < validity.not_before.timestamp() {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now_secs > validity.not_after.timestamp() {
            return Err(bad(CertificateError::Expired));
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
                self.verify_exact(end_entity, server_name, now)?;
            } else {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
            }
        }
        if !self.pins.is_empty() {
            let pin = spki_pin(end_entity)?;
            if !self.pins.contains(&pin) {
                let why = PinMismatch(pin_text(&pin));
                return Err(rustls::Error::Other(OtherError(Arc::new(why))));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_base64_sha256() {
        let pin = parse_pin("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap();
        assert_eq!(pin_text(&pin), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert!(parse_pin("not base64!").unwrap_err().contains("not base64"));
        assert!(parse_pin("AAAA").unwrap_err().contains("decodes to 3 bytes"));
    }
}
