//! Phase `dns`: turn the URL's host into socket addresses.

use std::net::{IpAddr, SocketAddr};

use futures_util::future::BoxFuture;

use super::{ProbeError, Reason};

/// Resolves `host`; an IP literal is returned as is, without a lookup.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ProbeError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ProbeError::new(Reason::DnsError, format!("cannot resolve `{host}`: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ProbeError::new(Reason::DnsError, format!("`{host}` resolved to no address")));
    }
    Ok(addrs)
}

/// Where a probe gets a host's addresses: the system resolver ([`System`]) unless
/// another is given to [`Prober::with_resolver`](super::Prober::with_resolver), e.g. a
/// test's fixed table for a host with several addresses.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Vec<SocketAddr>, ProbeError>>;
}

/// The system resolver, through [`resolve`].
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Resolve for System {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Vec<SocketAddr>, ProbeError>> {
        Box::pin(resolve(host, port))
    }
}
