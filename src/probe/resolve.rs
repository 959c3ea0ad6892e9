//! Phase `dns`: turn the URL's host into socket addresses, through [`crate::net::resolve`]
//! unless a test hands the probe its own resolver.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::ProbeError;

/// Where a probe gets a host's addresses: the system resolver ([`System`]) unless
/// another is given to [`Prober::with_resolver`](super::Prober::with_resolver), e.g. a
/// test's fixed table for a host with several addresses.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Vec<SocketAddr>, ProbeError>>;
}

/// The system resolver, through [`crate::net::resolve::resolve`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct System;

impl Resolve for System {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Vec<SocketAddr>, ProbeError>> {
        Box::pin(async move { crate::net::resolve::resolve(host, port).await.map_err(ProbeError::from) })
    }
}
