//! Name resolution: a URL's host into socket addresses.

use std::net::{IpAddr, SocketAddr};

use super::{NetError, NetErrorKind};

/// Resolves `host`; an IP literal is returned as is, without a lookup.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| NetError::new(NetErrorKind::Dns, format!("cannot resolve `{host}`: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(NetError::new(NetErrorKind::Dns, format!("`{host}` resolved to no address")));
    }
    Ok(addrs)
}
