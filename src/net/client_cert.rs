//! The client certificate (`tls.cert_file`, `tls.key_file`): loading and checking the pair,
//! and handing it to rustls when a server asks for one.
//!
//! Keys are PEM, RSA, ECDSA or Ed25519, in PKCS#8 or their traditional forms (PKCS#1
//! `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`). Certificates are rotated on disk, so the
//! files are looked at again whenever a server asks for the certificate: their size,
//! modification time and inode are compared with the loaded ones (a `stat` each, no
//! read), and a changed pair is read, checked and used from that handshake on. A pair
//! caught half-written (a new certificate beside the old key) is not used: the last good
//! one is kept, and a warning names the files.
//!
//! No message here ever quotes a key file's contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use crate::util::text::shown;
use crate::util::units::ByteSize;

/// The largest certificate or key file read: far above any real chain.
const FILE_LIMIT: ByteSize = ByteSize::mib(1);

/// Reads, parses and checks a certificate chain and its key; the error names the file and
/// completes "`tls.cert_file`/`tls.key_file`: ..." (the field is the first word's file).
pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, PairError> {
    let cert_shown = shown(&cert_file.display().to_string());
    let key_shown = shown(&key_file.display().to_string());
    let cert_pem = crate::util::files::read_capped(cert_file, FILE_LIMIT)
        .map_err(|e| PairError::Cert(format!("cannot read `{cert_shown}`: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| PairError::Cert(format!("`{cert_shown}` is not valid PEM")))?;
    if chain.is_empty() {
        return Err(PairError::Cert(format!("`{cert_shown}` holds no PEM certificate")));
    }
    if x509_parser::parse_x509_certificate(chain[0].as_ref()).is_err() {
        return Err(PairError::Cert(format!("`{cert_shown}` holds a certificate that is not valid X.509")));
    }
    let key_pem = crate::util::files::read_capped(key_file, FILE_LIMIT)
        .map_err(|e| PairError::Key(format!("cannot read `{key_shown}`: {e}")))?;
    // The PEM error may quote a line of the file: not shown.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        PairError::Key(format!(
            "`{key_shown}` holds no PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
        ))
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        PairError::Key(format!("`{key_shown}` is not a usable RSA, ECDSA or Ed25519 private key"))
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(PairError::Key(format!(
            "the key in `{key_shown}` does not match the certificate in `{cert_shown}`"
        ))),
    }
}

/// Which file of the pair is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PairError {
    Cert(String),
    Key(String),
}

impl PairError {
    /// `(field, sentence)` for a configuration problem.
    pub(crate) fn field(&self) -> (&'static str, &str) {
        match self {
            PairError::Cert(why) => ("cert_file", why),
            PairError::Key(why) => ("key_file", why),
        }
    }
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (field, why) = self.field();
        write!(f, "tls.{field}: {why}")
    }
}

/// What identifies one version of a file on disk without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() })
}

#[derive(Debug)]
struct Loaded {
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Arc<CertifiedKey>,
}

/// The client certificate of one TLS configuration, re-read when its files change.
#[derive(Debug)]
pub(crate) struct ClientIdentity {
    cert_file: PathBuf,
    key_file: PathBuf,
    loaded: Mutex<Loaded>,
}

impl ClientIdentity {
    /// Loads the pair now: a configuration that names unusable files fails here.
    pub(crate) fn new(cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let stamps = (stamp(cert_file), stamp(key_file));
        let key = Arc::new(load(cert_file, key_file).map_err(|e| e.to_string())?);
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            loaded: Mutex::new(Loaded { stamps, key }),
        })
    }

    /// The pair to present now: re-read if either file changed since it was loaded.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        if stamps != loaded.stamps {
            // Remembered either way: a bad pair is reported once, not at every handshake.
            loaded.stamps = stamps;
            match load(&self.cert_file, &self.key_file) {
                Ok(key) => {
                    tracing::info!(
                        cert_file = %self.cert_file.display(),
                        "The client certificate changed on disk; the new one is used from now on."
                    );
                    loaded.key = Arc::new(key);
                }
                Err(e) => tracing::warn!(
                    problem = %e,
                    "The client certificate files changed but cannot be used; the previous pair is \
                     still presented until they are fixed."
                ),
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesClientCert for ClientIdentity {
    fn resolve(&self, _root_hints: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
