//! Interim HTTP responses before the upgrade answer.
//!
//! HTTP lets a server send any number of `1xx` responses before the real one, and a
//! client must skip those it does not expect (RFC 9110 §15.2). The WebSocket library
//! takes the first response it reads as the answer, so a `100 Continue` ahead of the
//! `101` made the upgrade look refused. [`SkipInterim`] reads the start of the server's
//! stream, drops complete `1xx` heads other than `101`, and from the first other head on
//! passes every byte through untouched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest run of interim heads looked at; past it the bytes go to the library as they
/// are, which rejects an oversized answer itself.
const MAX_LOOKAHEAD: usize = 64 * 1024;

#[derive(Debug)]
enum State {
    /// Reading heads; `buf` holds the bytes of the one not yet complete.
    Heads(Vec<u8>),
    /// Handing over what was read ahead, from `pos`.
    Replay(Vec<u8>, usize),
    /// Past the interim responses: a plain pass-through.
    Pass,
}

/// An I/O stream that drops interim responses from what its reader receives.
#[derive(Debug)]
pub struct SkipInterim<S> {
    inner: S,
    state: State,
}

impl<S> SkipInterim<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, state: State::Heads(Vec::new()) }
    }
}

/// Whether `head` (without its final blank line) is an interim response to skip.
fn is_interim(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let version_ok = parts.next().is_some_and(|v| v.starts_with(b"HTTP/1."));
    let code = parts.next().unwrap_or_default();
    version_ok && code.len() == 3 && code[0] == b'1' && code.iter().all(u8::is_ascii_digit) && code != b"101"
}

/// Drops every complete interim head at the front of `buf`; `true` once a head that is
/// not interim has begun (or the look-ahead is exhausted), so the rest can be handed on.
fn strip(buf: &mut Vec<u8>) -> bool {
    loop {
        match buf.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) if is_interim(&buf[..end]) => {
                buf.drain(..end + 4);
            }
            Some(_) => return true,
            // Enough to tell this head is not interim: no need to wait for its end.
            None if buf.len() >= 12 && !is_interim(&buf[..12]) => return true,
            None => return buf.len() > MAX_LOOKAHEAD,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SkipInterim<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Pass => return Pin::new(&mut this.inner).poll_read(cx, out),
                State::Replay(buf, pos) => {
                    let n = out.remaining().min(buf.len() - *pos);
                    out.put_slice(&buf[*pos..*pos + n]);
                    *pos += n;
                    if *pos == buf.len() {
                        this.state = State::Pass;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Heads(buf) => {
                    let mut chunk = [0u8; 4096];
                    let mut read = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
                    let eof = read.filled().is_empty();
                    buf.extend_from_slice(read.filled());
                    if eof || strip(buf) {
                        let buf = std::mem::take(buf);
                        this.state = if buf.is_empty() { State::Pass } else { State::Replay(buf, 0) };
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SkipInterim<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn through(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let reader = ChunkReader { data: input.to_vec(), pos: 0, chunk };
        let _ = SkipInterim::new(reader).read_to_end(&mut out).await;
        out
    }

    /// A reader that hands out `data` at most `chunk` bytes at a time.
    struct ChunkReader {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl AsyncRead for ChunkReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.chunk.min(out.remaining()).min(self.data.len() - self.pos);
            let pos = self.pos;
            out.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    const UPGRADE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";

    #[tokio::test]
    async fn interim_heads_are_dropped_and_the_rest_passes_untouched() {
        let with_interim =
            [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n".as_slice(), UPGRADE]
                .concat();
        for chunk in [1, 3, 7, 4096] {
            assert_eq!(through(&with_interim, chunk).await, UPGRADE, "chunk {chunk}");
            assert_eq!(through(UPGRADE, chunk).await, UPGRADE, "chunk {chunk}");
        }
        let refused = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n";
        assert_eq!(through(refused, 5).await, b"HTTP/1.1 404 Not Found\r\n\r\n");
        let garbage = b"\0\x01not http at all";
        assert_eq!(through(garbage, 2).await, garbage);
        assert_eq!(through(b"HTTP/1.1 100 Cont", 4).await, b"HTTP/1.1 100 Cont");
        let bare = [b"HTTP/1.1 100\r\n\r\n".as_slice(), UPGRADE].concat();
        assert_eq!(through(&bare, 9).await, UPGRADE);
    }
}
