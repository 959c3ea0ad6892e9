//! Phase `connect`: open a TCP connection to the first address that accepts.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::{ProbeError, Reason};

/// Tries each address in turn; the caller bounds the whole attempt with the connect timeout.
pub async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, ProbeError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Probe traffic is a handful of small frames: send each at once.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ProbeError::new(Reason::ConnectRefused, format!("connection to {addr} refused"))
        }
        Some((addr, e)) => ProbeError::new(Reason::ConnectError, format!("cannot connect to {addr}: {e}")),
        None => ProbeError::new(Reason::ConnectError, "no address to connect to"),
    })
}
