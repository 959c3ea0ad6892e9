//! The `wss://` side of the demo: a private CA and a leaf certificate for 127.0.0.1 and
//! localhost, made at every start (nothing to ship, nothing that expires in the
//! repository), the CA written to a file the demo target trusts as `tls.ca_file`, and the
//! leaf key's `pin_sha256` (base64 SHA-256 of its SubjectPublicKeyInfo) pinned on top.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// A CA and a server identity it signed.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) ca_pem: String,
    /// The server key's pin, in the `pin_sha256` form.
    pub(crate) pin_sha256: String,
    pub(crate) server: Arc<ServerConfig>,
}

/// Makes a fresh CA and a leaf for `127.0.0.1` and `localhost`.
pub(crate) fn make() -> Result<Identity, String> {
    fn why(what: &'static str) -> impl Fn(rcgen::Error) -> String {
        move |e| format!("cannot make the demo's {what}: {e}")
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(why("CA"))?;
    ca_params.distinguished_name.push(DnType::CommonName, "wsprobe demo CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(why("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(why("CA"))?;

    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(why("certificate"))?;
    leaf_params.distinguished_name.push(DnType::CommonName, "wsprobe demo service");
    let leaf_key = KeyPair::generate().map_err(why("certificate key"))?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(why("certificate"))?;

    let spki = ring::digest::digest(&ring::digest::SHA256, &leaf_key.subject_public_key_info());
    let pin_sha256 = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain = vec![CertificateDer::from(leaf.der().to_vec()), ca.der().clone()];
    let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("cannot configure the demo's TLS listener: {e}"))?;
    Ok(Identity { ca_pem: ca.pem(), pin_sha256, server: Arc::new(server) })
}

/// A directory of this process's own, removed when dropped: it holds the CA file the
/// configuration names, which must exist when the configuration is loaded.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn create() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("wsprobe-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> std::io::Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
