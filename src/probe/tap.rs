//! What the server really put on the wire, seen beneath the WebSocket library.
//!
//! The library rewrites or hides two things the probe must report truthfully: an HTTP
//! status line it refuses to parse (`HTTP/1.0 503` becomes "wrong HTTP version"), and a
//! close code no endpoint may send (1005 becomes a made-up 1002). [`Tap`] passes every
//! byte through unchanged and follows the server's side of the stream with a small
//! parser: the first line of the response, then the frame headers, skipping payloads
//! except the first two bytes of the first close frame. It never buffers a payload and
//! keeps a few dozen bytes of state whatever the server sends.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest status line kept; a longer one is cut (it is only shown, never trusted).
const MAX_STATUS_LINE: usize = 256;

/// What the tap saw, shared with whoever holds [`Tap::seen`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The first line of the server's HTTP response, without its line end.
    pub status_line: String,
    /// The first close frame's code: `Some(None)` for a close frame without a code.
    pub close_code: Option<Option<u16>>,
}

/// An I/O stream that records what its reader receives, see the module docs.
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    parser: Parser,
    seen: Arc<Mutex<Seen>>,
}

impl<S> Tap<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, parser: Parser::default(), seen: Arc::default() }
    }

    /// A handle on what was seen, valid after the stream is gone.
    pub fn seen(&self) -> Arc<Mutex<Seen>> {
        Arc::clone(&self.seen)
    }

    /// What was seen so far.
    pub fn snapshot(&self) -> Seen {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let out = Pin::new(&mut this.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            let mut seen = this.seen.lock().unwrap_or_else(PoisonError::into_inner);
            this.parser.feed(fresh, &mut seen);
        }
        out
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the parser is in the server's byte stream.
#[derive(Debug, Default)]
enum State {
    /// In the first line of the response.
    #[default]
    StatusLine,
    /// In the rest of the response head; counts the bytes of `\r\n\r\n` matched so far
    /// (the status line's own `\r\n` counts as the first two).
    Head(u8),
    /// Collecting a frame header (at most 14 bytes).
    Header { bytes: [u8; 14], len: usize },
    /// Skipping a payload; for a close frame, keeping its first two bytes.
    Payload { left: u64, close: Option<CloseBytes> },
    /// Lost or done: nothing more to learn.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct CloseBytes {
    mask: Option<[u8; 4]>,
    code: [u8; 2],
    got: usize,
}

#[derive(Debug, Default)]
struct Parser {
    state: State,
}

impl Parser {
    fn feed(&mut self, mut bytes: &[u8], seen: &mut Seen) {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Done => return,
                State::StatusLine => {
                    if b == b'\n' {
                        self.state = State::Head(2);
                    } else if b != b'\r' && seen.status_line.len() < MAX_STATUS_LINE {
                        seen.status_line.push(char::from(b));
                    }
                }
                State::Head(matched) => {
                    let expect = b"\r\n\r\n"[usize::from(*matched)];
                    *matched = match (b == expect, b) {
                        (true, _) => *matched + 1,
                        (false, b'\r') => 1,
                        (false, _) => 0,
                    };
                    if *matched == 4 {
                        self.state = State::Header { bytes: [0; 14], len: 0 };
                    }
                }
                State::Header { bytes: header, len } => {
                    header[*len] = b;
                    *len += 1;
                    if let Some(next) = frame_start(&header[..*len]) {
                        self.state = next;
                        self.finish_if_empty(seen);
                    }
                }
                State::Payload { left, close } => {
                    if let Some(c) = close {
                        let i = c.got;
                        c.code[i] = b ^ c.mask.map_or(0, |m| m[i % 4]);
                        c.got += 1;
                        if c.got == 2 {
                            seen.close_code = Some(Some(u16::from_be_bytes(c.code)));
                            self.state = State::Done;
                            return;
                        }
                    }
                    *left -= 1;
                    self.finish_if_empty(seen);
                }
            }
            bytes = rest;
        }
    }

    /// After a payload (or an empty one): the next frame, or the end of a short close.
    fn finish_if_empty(&mut self, seen: &mut Seen) {
        if let State::Payload { left: 0, close } = &self.state {
            if close.is_some() {
                // A close frame with no code, or a one-byte payload the library rejects.
                seen.close_code = Some(None);
                self.state = State::Done;
            } else {
                self.state = State::Header { bytes: [0; 14], len: 0 };
            }
        }
    }
}

/// Parses a frame header once complete: the payload state it leads to.
fn frame_start(h: &[u8]) -> Option<State> {
    let (&b0, &b1) = (h.first()?, h.get(1)?);
    let masked = b1 & 0x80 != 0;
    let (len_bytes, short) = match b1 & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let need = 2 + len_bytes + if masked { 4 } else { 0 };
    if h.len() < need {
        return None;
    }
    let len =
        short.unwrap_or_else(|| h[2..2 + len_bytes].iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)));
    let mask = masked.then(|| [h[need - 4], h[need - 3], h[need - 2], h[need - 1]]);
    let close = (b0 & 0x0F == 0x8).then_some(CloseBytes { mask, code: [0; 2], got: 0 });
    // A one-byte close payload carries no code: skip it like any other payload.
    let close = if len < 2 { close.filter(|_| len == 0) } else { close };
    Some(State::Payload { left: len, close })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Seen {
        let mut parser = Parser::default();
        let mut seen = Seen::default();
        for c in chunks {
            parser.feed(c, &mut seen);
        }
        seen
    }

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

    #[test]
    fn reads_the_status_line_and_the_first_close_code_across_any_split() {
        let mut stream = HEAD.to_vec();
        stream.extend_from_slice(&[0x81, 0x02, b'h', b'i']); // text
        stream.extend_from_slice(&[0x89, 0x7E, 0x00, 0x02, b'p', b'q']); // ping, 16-bit length
        stream.extend_from_slice(&[0x88, 0x02, 0x03, 0xED]); // close 1005
        stream.extend_from_slice(&[0x88, 0x02, 0x03, 0xE8]); // a second close: ignored
        for split in 0..stream.len() {
            let seen = run(&[&stream[..split], &stream[split..]]);
            assert_eq!(seen.status_line, "HTTP/1.1 101 Switching Protocols", "split at {split}");
            assert_eq!(seen.close_code, Some(Some(1005)), "split at {split}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytewise).close_code, Some(Some(1005)));
    }

    #[test]
    fn masked_close_and_close_without_code() {
        let mut stream = HEAD.to_vec();
        let key = [1, 2, 3, 4];
        stream.extend_from_slice(&[0x88, 0x82]);
        stream.extend_from_slice(&key);
        stream.extend_from_slice(&[0x03 ^ 1, 0xED ^ 2]);
        assert_eq!(run(&[&stream]).close_code, Some(Some(1005)));

        let mut stream = HEAD.to_vec();
        stream.extend_from_slice(&[0x88, 0x00]);
        assert_eq!(run(&[&stream]).close_code, Some(None));
    }

    #[test]
    fn huge_payloads_are_skipped_without_state() {
        let mut stream = HEAD.to_vec();
        stream.extend_from_slice(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x10, 0x00]); // 4096 bytes
        stream.extend(std::iter::repeat_n(b'x', 4096));
        stream.extend_from_slice(&[0x88, 0x02, 0x13, 0x88]); // 5000
        assert_eq!(run(&[&stream]).close_code, Some(Some(5000)));
        let long = [b"HTTP/1.0 503 ".as_slice(), &[b'x'; 1000]].concat();
        assert_eq!(run(&[&long]).status_line.len(), MAX_STATUS_LINE);
    }
}
