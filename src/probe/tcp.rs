//! Phase `connect`: open a TCP connection to one of the host's addresses, through
//! [`crate::net::tcp`] (Happy Eyeballs), its failures named with the probe's reasons.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::ProbeError;
pub use crate::net::tcp::ATTEMPT_DELAY;

/// Connects to the first address that accepts; the caller bounds the whole attempt with
/// the connect timeout. When every attempt fails, the last failure is reported.
pub async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, ProbeError> {
    crate::net::tcp::connect(addrs).await.map_err(ProbeError::from)
}
