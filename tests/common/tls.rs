//! Throwaway TLS identities for `wss://` fake servers, and temp files to hand them to the
//! prober as `ca_file`.

use std::io::Write;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A self-signed certificate and its key. The certificate is its own issuer, so
/// `cert_pem` doubles as the CA file a client must trust.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8.
    pub key_der: Vec<u8>,
}

impl TlsIdentity {
    /// A server configuration (ring provider, TLS 1.2 and 1.3) presenting this identity.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(self.cert_der.clone())], key)
            .expect("rcgen produced a usable certificate and key");
        Arc::new(config)
    }

    /// A client configuration (ring provider) that trusts this certificate and nothing else.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.cert_der.clone()))
            .expect("a self-signed certificate is a valid trust anchor");
        client_config_with_roots(roots)
    }
}

/// A client configuration (ring provider) trusting exactly `roots`; pass
/// `RootCertStore::empty()` for a client that trusts nothing.
pub fn client_config_with_roots(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A self-signed certificate valid for `names` (DNS names or IP addresses, e.g.
/// `["localhost", "127.0.0.1"]`).
pub fn self_signed(names: &[&str]) -> TlsIdentity {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen generates a certificate");
    TlsIdentity {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        cert_der: certified.cert.der().to_vec(),
        key_der: certified.signing_key.serialize_der(),
    }
}

/// A temporary file holding `contents`, deleted when the handle drops.
pub fn write_temp(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("create a temp file");
    file.write_all(contents.as_bytes()).expect("write the temp file");
    file.flush().expect("flush the temp file");
    file
}
