//! A catalogue of in-process fake WebSocket servers for integration tests.
//!
//! Every server binds `127.0.0.1:0`, serves any number of sequential and concurrent
//! connections (each in its own task, so one bad connection ends only itself), counts the
//! TCP connections it accepts, and stops with all its connections when dropped. Servers
//! speak raw RFC 6455 frames (see `wire`), so every injected delay is a single sleep at
//! exactly the documented point; sleeps are skipped entirely when zero.
//!
//! Any request path is accepted. Every server that reads a request records its head
//! (`FakeServer::requests`).
#![allow(dead_code)]
#![allow(clippy::expect_used)]

pub mod alertmanager;
pub mod chromium;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod echoing;
pub mod health;
pub mod hostile;
pub mod http;
pub mod netpaths;
pub mod poll;
pub mod process;
pub mod prometheus;
pub mod prometheus_stack;
pub mod promtool;
pub mod session;
mod tls;
mod wire;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;

// Not every test binary that includes this module uses the TLS helpers.
#[allow(unused_imports)]
pub use tls::{client_config_with_roots, self_signed, write_temp, TlsIdentity};
use wire::{
    accept_key, close_payload, encode_frame, frame_header, garbage_bytes, http_response, pause,
    switching_protocols, Conn, Io, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT,
};

/// The welcome message every server that "speaks first" sends by default.
pub const WELCOME: &str = r#"{"type":"welcome"}"#;

/// Length of the text message `trickle` sends (the frame adds a 4-byte header).
pub const TRICKLE_PAYLOAD_LEN: usize = 1000;

/// How [`echo`] and [`push`] behave. `Default`: every delay zero, no TLS, [`WELCOME`].
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// Sleep after reading the full HTTP request, before writing the 101.
    pub handshake_delay: Duration,
    /// Sleep after writing the 101, before sending the welcome (skipped without a welcome).
    pub first_message_delay: Duration,
    /// Text message sent right after the upgrade; `None`: the server does not speak first.
    pub welcome: Option<String>,
    /// Sleep after reading each ping, before writing its pong.
    pub pong_delay: Duration,
    /// Sleep after reading the client's close frame, before echoing it and closing TCP.
    pub close_delay: Duration,
    /// Serve `wss://` with this identity.
    pub tls: Option<TlsIdentity>,
    /// Sleep after the TCP accept, before reading the `ClientHello`.
    pub tls_delay: Duration,
}

impl Default for ServerOpts {
    fn default() -> Self {
        Self {
            handshake_delay: Duration::ZERO,
            first_message_delay: Duration::ZERO,
            welcome: Some(WELCOME.to_owned()),
            pong_delay: Duration::ZERO,
            close_delay: Duration::ZERO,
            tls: None,
            tls_delay: Duration::ZERO,
        }
    }
}

/// One scripted server action for [`push`]; each delay counts from the previous action,
/// or from reading the client's first text message for the first one.
#[derive(Clone, Debug)]
pub enum Push {
    /// Wait, then send this text message.
    Text(Duration, String),
    /// Wait, then send a close frame with this code and reason, wait for the client's
    /// close reply (or its going away), and close TCP.
    Close(Duration, u16, String),
}

/// What a server observed, shared between its tasks and the test.
#[derive(Debug)]
struct Shared {
    connections: watch::Sender<usize>,
    received: Mutex<Vec<String>>,
    requests: Mutex<Vec<String>>,
    closes: Mutex<Vec<u16>>,
}

impl Shared {
    fn record_request(&self, head: &str) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.push(head.to_owned());
    }

    fn record_close(&self, payload: &[u8]) {
        let code = match payload {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 1005, // "no status received"
        };
        self.closes.lock().unwrap_or_else(PoisonError::into_inner).push(code);
    }

    fn record_received(&self, text: String) {
        let mut received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received.push(text);
    }
}

/// A running fake server; dropping it stops the server and every open connection.
#[derive(Debug)]
pub struct FakeServer {
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// `ws://127.0.0.1:PORT/ws`, or `wss://localhost:PORT/ws` when serving TLS.
    pub fn url(&self) -> String {
        if self.tls {
            format!("wss://localhost:{}/ws", self.addr.port())
        } else {
            format!("ws://{}/ws", self.addr)
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.shared.connections.borrow()
    }

    /// Waits until at least `n` connections were accepted; `false` if `within` ran out.
    /// The server accepts in its own task, so right after a client's `connect()` returns
    /// the count may still lag by a scheduling round.
    pub async fn wait_connections(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.shared.connections.subscribe();
        let reached = timeout(within, rx.wait_for(|c| *c >= n)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Complete text messages received from clients (`echo`, `push`, `no_pong`,
    /// `no_close_reply`), in arrival order across all connections.
    pub fn received(&self) -> Vec<String> {
        let received = self.shared.received.lock().unwrap_or_else(PoisonError::into_inner);
        received.clone()
    }

    /// Every HTTP request head read (request line and headers, no final blank line).
    /// Close codes of the close frames clients sent (echo and push servers).
    pub fn closes(&self) -> Vec<u16> {
        self.shared.closes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn requests(&self) -> Vec<String> {
        let requests = self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connections, so this ends them all.
        self.task.abort();
    }
}

/// Binds a loopback port and runs `handler` on every accepted connection.
async fn serve<F, Fut>(tls: bool, handler: F) -> FakeServer
where
    F: Fn(TcpStream, Arc<Shared>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let shared = Arc::new(Shared {
        connections: watch::Sender::new(0),
        received: Mutex::default(),
        requests: Mutex::default(),
        closes: Mutex::default(),
    });
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), handler));
    FakeServer { addr, tls, shared, task }
}

async fn accept_loop<F, Fut>(listener: TcpListener, shared: Arc<Shared>, handler: F)
where
    F: Fn(TcpStream, Arc<Shared>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.connections.send_modify(|n| *n += 1);
                    // Small writes (trickle, frames) must leave at once, not wait for ACKs.
                    let _ = stream.set_nodelay(true);
                    conns.spawn(handler(stream, Arc::clone(&shared)));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => pause(Duration::from_millis(5)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads the upgrade request, sleeps `delay`, answers 101; `false` if the connection is
/// over (peer gone, or no `Sec-WebSocket-Key`, which is answered with a 400).
async fn upgrade<S: Io>(conn: &mut Conn<S>, shared: &Shared, delay: Duration) -> bool {
    let Some(request) = conn.read_request().await else {
        return false;
    };
    shared.record_request(&request.head);
    let Some(key) = request.key else {
        let _ = conn.send_raw(http_response(400, "missing Sec-WebSocket-Key").as_bytes()).await;
        return false;
    };
    pause(delay).await;
    let answer = switching_protocols(&accept_key(&key), request.protocol.as_deref());
    conn.send_raw(answer.as_bytes()).await.is_ok()
}

/// Upgrades a plain connection at once and, if `welcome`, sends [`WELCOME`].
async fn upgraded(stream: TcpStream, shared: &Shared, welcome: bool) -> Option<Conn<TcpStream>> {
    let mut conn = Conn::new(stream);
    if !upgrade(&mut conn, shared, Duration::ZERO).await {
        return None;
    }
    if welcome && conn.send_frame(TEXT, WELCOME.as_bytes()).await.is_err() {
        return None;
    }
    Some(conn)
}

/// What a session server does with complete data messages.
#[derive(Debug)]
enum OnData {
    Discard,
    Echo,
    Script(Vec<Push>),
}

/// How a session server answers the client after the upgrade; `None` never answers.
#[derive(Debug)]
struct Conduct {
    on_data: OnData,
    pong: Option<Duration>,
    close: Option<Duration>,
}

/// A server running `opts` (TLS, upgrade, welcome) and then `conduct`.
async fn session_server(opts: ServerOpts, conduct: Conduct) -> FakeServer {
    let acceptor = opts.tls.as_ref().map(|identity| TlsAcceptor::from(identity.server_config()));
    let tls = acceptor.is_some();
    let opts = Arc::new(opts);
    let conduct = Arc::new(conduct);
    serve(tls, move |stream, shared| {
        let (opts, conduct, acceptor) = (Arc::clone(&opts), Arc::clone(&conduct), acceptor.clone());
        async move {
            match acceptor {
                None => session(Conn::new(stream), &shared, &opts, &conduct).await,
                Some(acceptor) => {
                    pause(opts.tls_delay).await;
                    if let Ok(stream) = acceptor.accept(stream).await {
                        session(Conn::new(stream), &shared, &opts, &conduct).await;
                    }
                }
            }
        }
    })
    .await
}

async fn session<S: Io>(mut conn: Conn<S>, shared: &Shared, opts: &ServerOpts, conduct: &Conduct) {
    if !upgrade(&mut conn, shared, opts.handshake_delay).await {
        return;
    }
    if let Some(welcome) = &opts.welcome {
        pause(opts.first_message_delay).await;
        if conn.send_frame(TEXT, welcome.as_bytes()).await.is_err() {
            return;
        }
    }
    converse(&mut conn, shared, conduct).await;
}

/// Reads client frames one at a time until the connection ends. Handling is sequential:
/// while a pong delay or a script runs, later client frames wait in the socket.
async fn converse<S: Io>(conn: &mut Conn<S>, shared: &Shared, conduct: &Conduct) {
    let mut partial: Option<(u8, Vec<u8>)> = None;
    let mut played = false;
    while let Some(frame) = conn.read_frame().await {
        let (opcode, data) = match frame.opcode {
            PING => {
                if let Some(delay) = conduct.pong {
                    pause(delay).await;
                    if conn.send_frame(PONG, &frame.payload).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            CLOSE => {
                shared.record_close(&frame.payload);
                if let Some(delay) = conduct.close {
                    pause(delay).await;
                    let _ = conn.send_frame(CLOSE, &frame.payload).await;
                    let _ = conn.stream.shutdown().await;
                    return;
                }
                continue;
            }
            TEXT | BINARY if frame.fin => (frame.opcode, frame.payload),
            TEXT | BINARY => {
                partial = Some((frame.opcode, frame.payload));
                continue;
            }
            CONTINUATION => {
                let Some((opcode, mut data)) = partial.take() else {
                    return;
                };
                data.extend_from_slice(&frame.payload);
                if !frame.fin {
                    partial = Some((opcode, data));
                    continue;
                }
                (opcode, data)
            }
            _ => continue,
        };
        if opcode == TEXT {
            shared.record_received(String::from_utf8_lossy(&data).into_owned());
        }
        let carry_on = match &conduct.on_data {
            OnData::Echo => conn.send_frame(opcode, &data).await.is_ok(),
            OnData::Script(script) if opcode == TEXT && !played => {
                played = true;
                play(conn, script).await
            }
            OnData::Discard | OnData::Script(_) => true,
        };
        if !carry_on {
            return;
        }
    }
}

/// Plays a [`push`] script; `false` when the connection is over.
async fn play<S: Io>(conn: &mut Conn<S>, script: &[Push]) -> bool {
    for action in script {
        match action {
            Push::Text(after, text) => {
                pause(*after).await;
                if conn.send_frame(TEXT, text.as_bytes()).await.is_err() {
                    return false;
                }
            }
            Push::Close(after, code, reason) => {
                pause(*after).await;
                if conn.send_frame(CLOSE, &close_payload(*code, reason)).await.is_ok() {
                    conn.await_close().await;
                    let _ = conn.stream.shutdown().await;
                }
                return false;
            }
        }
    }
    true
}

/// Upgrades (after `handshake_delay`), sends the welcome, echoes text and binary messages,
/// answers each ping after `pong_delay` and the close after `close_delay`.
pub async fn echo(opts: ServerOpts) -> FakeServer {
    let conduct =
        Conduct { on_data: OnData::Echo, pong: Some(opts.pong_delay), close: Some(opts.close_delay) };
    session_server(opts, conduct).await
}

/// Like [`echo`], but answers the first client text message of each connection by playing
/// `script` (no echo); later client messages are only recorded (see [`FakeServer::received`]).
pub async fn push(opts: ServerOpts, script: Vec<Push>) -> FakeServer {
    let conduct = Conduct {
        on_data: OnData::Script(script),
        pong: Some(opts.pong_delay),
        close: Some(opts.close_delay),
    };
    session_server(opts, conduct).await
}

/// Accepts TCP, never reads or writes, keeps the socket open.
pub async fn blackhole() -> FakeServer {
    serve(false, |stream, _| async move {
        let _held = stream;
        std::future::pending::<()>().await;
    })
    .await
}

/// Answers the upgrade request with HTTP `code` and a text/plain `body`, then closes.
pub async fn status(code: u16, body: &str) -> FakeServer {
    let response: Arc<str> = http_response(code, body).into();
    serve(false, move |stream, shared| {
        let response = Arc::clone(&response);
        async move {
            let mut conn = Conn::new(stream);
            let Some(request) = conn.read_request().await else {
                return;
            };
            shared.record_request(&request.head);
            if conn.send_raw(response.as_bytes()).await.is_ok() {
                let _ = conn.stream.shutdown().await;
            }
        }
    })
    .await
}

/// Answers 101 with a wrong `Sec-WebSocket-Accept`, then holds the socket.
pub async fn bad_accept_key() -> FakeServer {
    serve(false, |stream, shared| async move {
        let mut conn = Conn::new(stream);
        let Some(request) = conn.read_request().await else {
            return;
        };
        shared.record_request(&request.head);
        let wrong = accept_key("AAAAAAAAAAAAAAAAAAAAAA==");
        let answer = switching_protocols(&wrong, request.protocol.as_deref());
        if conn.send_raw(answer.as_bytes()).await.is_ok() {
            conn.drain().await;
        }
    })
    .await
}

/// Answers the HTTP request with 64 fixed non-HTTP bytes (first byte NUL), then holds the
/// socket.
pub async fn garbage() -> FakeServer {
    serve(false, |stream, shared| async move {
        let mut conn = Conn::new(stream);
        let Some(request) = conn.read_request().await else {
            return;
        };
        shared.record_request(&request.head);
        if conn.send_raw(&garbage_bytes()).await.is_ok() {
            conn.drain().await;
        }
    })
    .await
}

/// Completes the upgrade, then sends nothing and ignores everything (no pong, no close
/// reply), keeping the socket open.
pub async fn silent() -> FakeServer {
    serve(false, |stream, shared| async move {
        if let Some(mut conn) = upgraded(stream, &shared, false).await {
            conn.drain().await;
        }
    })
    .await
}

/// After the upgrade, writes one 1000-byte text frame one byte at a time: byte `k` of the
/// 1004-byte frame at `k * byte_interval` after the 101 (no drift), then holds the socket.
pub async fn trickle(byte_interval: Duration) -> FakeServer {
    let frame: Arc<[u8]> = encode_frame(TEXT, trickle_payload().as_bytes()).into();
    serve(false, move |stream, shared| {
        let frame = Arc::clone(&frame);
        async move {
            let Some(mut conn) = upgraded(stream, &shared, false).await else {
                return;
            };
            let start = Instant::now();
            for (k, byte) in (0u32..).zip(frame.iter()) {
                if k > 0 {
                    sleep_until(start + byte_interval * k).await;
                }
                if conn.send_raw(&[*byte]).await.is_err() {
                    return;
                }
            }
            conn.drain().await;
        }
    })
    .await
}

/// The JSON text `trickle` sends: `{"type":"trickle","pad":"xxx…"}`, 1000 bytes.
pub fn trickle_payload() -> String {
    let head = r#"{"type":"trickle","pad":""#;
    let pad = "x".repeat(TRICKLE_PAYLOAD_LEN - head.len() - 2);
    format!("{head}{pad}\"}}")
}

/// After the upgrade, writes a binary frame header announcing `announced_len` bytes
/// (keep it below 2^63), then at most 16 payload bytes, then holds the socket.
pub async fn huge_frame(announced_len: u64) -> FakeServer {
    let mut bytes = frame_header(BINARY, announced_len);
    bytes.resize(bytes.len() + announced_len.min(16) as usize, b'x');
    let bytes: Arc<[u8]> = bytes.into();
    serve(false, move |stream, shared| {
        let bytes = Arc::clone(&bytes);
        async move {
            let Some(mut conn) = upgraded(stream, &shared, false).await else {
                return;
            };
            if conn.send_raw(&bytes).await.is_ok() {
                conn.drain().await;
            }
        }
    })
    .await
}

/// Upgrade and welcome, then reads and discards every client frame: never pongs, never
/// answers the close.
pub async fn no_pong() -> FakeServer {
    let conduct = Conduct { on_data: OnData::Discard, pong: None, close: None };
    session_server(ServerOpts::default(), conduct).await
}

/// Upgrade and welcome, echoes and answers pings at once, but ignores the close frame and
/// keeps the socket open.
pub async fn no_close_reply() -> FakeServer {
    let conduct = Conduct { on_data: OnData::Echo, pong: Some(Duration::ZERO), close: None };
    session_server(ServerOpts::default(), conduct).await
}

/// Upgrade and welcome, then at once resets the TCP connection (RST; the 101 and the
/// welcome are delivered first).
pub async fn reset_after_upgrade() -> FakeServer {
    serve(false, |stream, shared| async move {
        if let Some(conn) = upgraded(stream, &shared, true).await {
            let _ = conn.into_inner().set_zero_linger();
        }
    })
    .await
}

/// Resets the TCP connection right after accepting it, before reading anything.
pub async fn reset_on_accept() -> FakeServer {
    serve(false, |stream, _| async move {
        let _ = stream.set_zero_linger();
    })
    .await
}

/// Upgrade and welcome, then at once a close frame with `code` and `reason`; waits for the
/// client's close reply (or its going away) and closes TCP.
pub async fn close_after_welcome(code: u16, reason: &str) -> FakeServer {
    let payload: Arc<[u8]> = close_payload(code, reason).into();
    serve(false, move |stream, shared| {
        let payload = Arc::clone(&payload);
        async move {
            let Some(mut conn) = upgraded(stream, &shared, true).await else {
                return;
            };
            if conn.send_frame(CLOSE, &payload).await.is_ok() {
                conn.await_close().await;
                let _ = conn.stream.shutdown().await;
            }
        }
    })
    .await
}

/// Keeps an [`unaccepting`] listener and the connections filling its queue alive.
#[derive(Debug)]
pub struct Guard {
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

/// A listener whose accept queue is full and never drained: the kernel drops new SYNs, so
/// a `connect()` to the address hangs (connect timeout). Setup takes about 50 ms.
pub async fn unaccepting() -> (SocketAddr, Guard) {
    let socket = TcpSocket::new_v4().expect("create a socket");
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind a loopback port");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("bound address");
    let mut fillers = Vec::new();
    // Connect until one connect hangs: that one proves the queue is full.
    for _ in 0..64 {
        match timeout(Duration::from_millis(50), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("filling the accept queue of {addr} failed: {e}"),
            Err(_) => {
                let guard = Guard { _listener: listener, _fillers: fillers };
                return (addr, guard);
            }
        }
    }
    panic!("the accept queue of {addr} never filled");
}

/// A loopback address with nothing listening: connecting is refused.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("bound address")
}
