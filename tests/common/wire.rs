//! Bytes on the wire for the fake servers: reading the HTTP upgrade request, answering it,
//! and reading and writing raw RFC 6455 frames. No WebSocket library sits in between, so
//! each server alone decides when a pong, a close reply or a single byte goes out.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::StatusCode;

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Longest request head read before the connection is dropped.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Longest client frame accepted; a larger one ends the connection instead of allocating.
const MAX_CLIENT_PAYLOAD: u64 = 16 << 20;

/// Any byte stream a fake server can speak over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Sleeps for `d`, or not at all when `d` is zero (a zero tokio sleep still waits for a
/// timer tick of up to a millisecond).
pub async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// The parts of an upgrade request the servers use.
#[derive(Debug)]
pub struct Request {
    /// The request line and headers, exactly as received, without the final blank line.
    pub head: String,
    pub key: Option<String>,
    /// The first subprotocol the client offered.
    pub protocol: Option<String>,
}

/// One frame from the client, unmasked.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A server-side connection and the bytes read from it but not yet parsed.
#[derive(Debug)]
pub struct Conn<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Io> Conn<S> {
    pub fn new(stream: S) -> Self {
        Self { stream, buf: Vec::new() }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Reads more bytes into the buffer; `None` on end of stream or error.
    async fn read_more(&mut self) -> Option<()> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(()),
        }
    }

    async fn fill(&mut self, n: usize) -> Option<()> {
        while self.buf.len() < n {
            self.read_more().await?;
        }
        Some(())
    }

    /// Reads an HTTP request head up to its blank line. Bytes after it stay buffered for
    /// the frame reader. `None` when the peer goes away or the head exceeds 16 KiB.
    pub async fn read_request(&mut self) -> Option<Request> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_REQUEST_HEAD {
                return None;
            }
            self.read_more().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let key = header("sec-websocket-key");
        let protocol = header("sec-websocket-protocol")
            .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()).map(str::to_owned));
        Some(Request { head, key, protocol })
    }

    /// Writes and flushes, so every call reaches the socket at once.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends one unmasked, unfragmented frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.send_raw(&encode_frame(opcode, payload)).await
    }

    /// Reads one client frame. `None` on end of stream, error, or an oversized frame.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let (len, mut at) = match b1 & 0x7F {
            126 => {
                self.fill(4).await?;
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.fill(10).await?;
                (u64::from_be_bytes(self.buf[2..10].try_into().ok()?), 10)
            }
            n => (u64::from(n), 2),
        };
        if len > MAX_CLIENT_PAYLOAD {
            return None;
        }
        let mask = if b1 & 0x80 != 0 {
            self.fill(at + 4).await?;
            let m = [self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        let total = at + usize::try_from(len).ok()?;
        self.fill(total).await?;
        let mut payload: Vec<u8> = self.buf.drain(..total).skip(at).collect();
        if let Some(m) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        Some(Frame { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload })
    }

    /// Reads and discards everything until the peer goes away.
    pub async fn drain(&mut self) {
        self.buf.clear();
        while self.read_more().await.is_some() {
            self.buf.clear();
        }
    }

    /// Reads frames, discarding them, until a close frame or the end of the stream.
    pub async fn await_close(&mut self) {
        while let Some(frame) = self.read_frame().await {
            if frame.opcode == CLOSE {
                return;
            }
        }
    }
}

/// The header of an unmasked frame with FIN set.
pub fn frame_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short @ 0..=125), _) => out.push(short),
        (_, Ok(medium)) => {
            out.push(126);
            out.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out
}

/// A complete unmasked frame with FIN set.
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A close frame's payload: the code, big-endian, then the UTF-8 reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(reason.as_bytes());
    out
}

/// A `101 Switching Protocols` answer carrying `accept` and, if offered, the first
/// subprotocol.
pub fn switching_protocols(accept: &str, protocol: Option<&str>) -> String {
    let protocol = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
    )
}

/// The correct `Sec-WebSocket-Accept` value for a client key.
pub fn accept_key(key: &str) -> String {
    derive_accept_key(key.as_bytes())
}

/// A complete plain-text HTTP response with `Connection: close`.
pub fn http_response(code: u16, body: &str) -> String {
    let reason = StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("Unknown");
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// 64 fixed pseudo-random bytes that no HTTP parser accepts: the first byte is NUL, so a
/// client fails on the very first byte, deterministically, without waiting for more.
pub fn garbage_bytes() -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out: Vec<u8> = (0..64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    out[0] = 0;
    out
}
