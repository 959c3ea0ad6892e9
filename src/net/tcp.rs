//! TCP connect: open a connection to one of the host's addresses.
//!
//! With several addresses, attempts are staggered (RFC 8305, "Happy Eyeballs"): the next
//! address is tried [`ATTEMPT_DELAY`] after the previous attempt started, or at once when
//! it failed, so an address that drops SYNs costs a quarter second instead of the whole
//! connect timeout. Addresses alternate between IPv6 and IPv4, starting with the family
//! of the first one the resolver gave. The first connection wins; the others are dropped.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{NetError, NetErrorKind};
use crate::util::time::deadline;

/// RFC 8305's recommended "Connection Attempt Delay".
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to the first address that accepts; the caller bounds the whole attempt with
/// the connect timeout. When every attempt fails, the last failure is reported.
pub async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, NetError> {
    if let [only] = addrs {
        // Nothing to race: connect in this task rather than spawn one, which would cost a
        // task and, often, a wake-up of another worker thread on every probe.
        return match TcpStream::connect(only).await {
            Ok(stream) => Ok(nodelay(stream)),
            Err(e) => Err(failure(Some((only.to_string(), e)))),
        };
    }
    let mut queue = interleave(addrs).into_iter();
    let mut attempts = JoinSet::new();
    let mut last: Option<(String, io::Error)> = None;
    let mut next_start = Instant::now();
    loop {
        if attempts.is_empty() || Instant::now() >= next_start {
            match queue.next() {
                Some(addr) => {
                    attempts.spawn(async move { (addr, TcpStream::connect(addr).await) });
                    next_start = deadline(Instant::now(), ATTEMPT_DELAY);
                    continue;
                }
                None if attempts.is_empty() => return Err(failure(last)),
                None => {}
            }
        }
        let more = queue.len() > 0;
        tokio::select! {
            Some(done) = attempts.join_next() => match done {
                // Dropping the set aborts the attempts still in flight.
                Ok((_, Ok(stream))) => return Ok(nodelay(stream)),
                Ok((addr, Err(e))) => {
                    last = Some((addr.to_string(), e));
                    // A failed attempt frees its turn: the next one starts now.
                    next_start = Instant::now();
                }
                Err(e) => {
                    last = Some(("an address".to_owned(), io::Error::other(e.to_string())));
                    next_start = Instant::now();
                }
            },
            () = tokio::time::sleep_until(next_start), if more => {}
            else => return Err(failure(last)),
        }
    }
}

/// Probe traffic is a handful of small frames: send each at once.
fn nodelay(stream: TcpStream) -> TcpStream {
    let _ = stream.set_nodelay(true);
    stream
}

/// The addresses alternating between families, starting with the first address's family;
/// each family keeps the resolver's order.
fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return Vec::new() };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    let (mut a, mut b) = (same.drain(..), other.drain(..));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

fn failure(last: Option<(String, io::Error)>) -> NetError {
    match last {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            NetError::new(NetErrorKind::Refused, format!("connection to {addr} refused"))
        }
        Some((addr, e)) => NetError::new(NetErrorKind::Connect, format!("cannot connect to {addr}: {e}")),
        None => NetError::new(NetErrorKind::Connect, "no address to connect to"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_starting_with_the_first() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        let input = [a("[::1]:1"), a("[::2]:1"), a("[::3]:1"), a("10.0.0.1:1"), a("10.0.0.2:1")];
        let want = [a("[::1]:1"), a("10.0.0.1:1"), a("[::2]:1"), a("10.0.0.2:1"), a("[::3]:1")];
        assert_eq!(interleave(&input), want);
        let input = [a("10.0.0.1:1"), a("[::1]:1"), a("10.0.0.2:1")];
        assert_eq!(interleave(&input), [a("10.0.0.1:1"), a("[::1]:1"), a("10.0.0.2:1")]);
        assert!(interleave(&[]).is_empty());
    }
}
