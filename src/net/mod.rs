//! Networking shared by the probe, the health checks and alert delivery: name
//! resolution, TCP connect (Happy Eyeballs), forward proxies (CONNECT), TLS with client
//! certificates and pins, and one bounded HTTP/1.1 client.
//!
//! Errors here are net-level, a kind and a sentence; each feature maps the kind to its own
//! reason (`connect_refused`, ...) and keeps the sentence as it is. Deadlines are the
//! callers': each bounds a call with the timeout its own settings name.

pub(crate) mod client_cert;
pub mod http;
pub(crate) mod pin;
pub mod proxy;
pub mod resolve;
pub mod tcp;
pub mod tls;

/// What went wrong below HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetErrorKind {
    /// The host could not be resolved, or resolved to nothing.
    Dns,
    /// Every address refused the connection.
    Refused,
    /// Any other connect failure.
    Connect,
    /// The TLS handshake failed (certificate, name, protocol).
    Tls,
    /// The peer answered the TLS handshake with something that is not TLS.
    NotTls,
}

/// A failed resolve, connect or handshake: its kind and a sentence saying why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NetError {
    pub kind: NetErrorKind,
    pub message: String,
}

impl NetError {
    pub fn new(kind: NetErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}
