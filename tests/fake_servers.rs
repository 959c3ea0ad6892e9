//! Self-test of the fake server catalogue in `tests/common`, driven by a plain
//! tokio-tungstenite client so it does not depend on wsprobe itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{
    bad_accept_key, blackhole, client_config_with_roots, close_after_welcome, echo, garbage, huge_frame,
    no_close_reply, no_pong, push, refused_addr, reset_after_upgrade, reset_on_accept, self_signed, silent,
    status, trickle, unaccepting, write_temp, FakeServer, Push, ServerOpts, WELCOME,
};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{client_async, client_async_with_config, WebSocketStream};

/// Allowed overshoot of a measured duration over the injected delay.
const SLACK: Duration = Duration::from_millis(50);
const DELAY: Duration = Duration::from_millis(40);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(150);

type Ws = WebSocketStream<TcpStream>;

async fn upgrade(server: &FakeServer) -> Result<Ws, Error> {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    client_async(server.url(), tcp).await.map(|(ws, _)| ws)
}

async fn next<S>(ws: &mut WebSocketStream<S>) -> Result<Message, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    timeout(Duration::from_secs(2), ws.next()).await.expect("a message in time").expect("stream still open")
}

fn assert_took(took: Duration, delay: Duration) {
    assert!(took >= delay && took < delay + SLACK, "took {took:?}, injected {delay:?}");
}

#[tokio::test]
async fn echo_upgrades_welcomes_and_echoes() {
    let server = echo(ServerOpts::default()).await;
    let mut ws = upgrade(&server).await.expect("upgrade");
    assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::binary(vec![1u8, 2, 3]));
    ws.close(None).await.unwrap();
    assert!(matches!(next(&mut ws).await.unwrap(), Message::Close(_)));
    assert_eq!(server.received(), vec!["hello".to_owned()]);
    assert_eq!(server.connections(), 1);
    assert!(server.url().starts_with("ws://127.0.0.1:"));
}

#[tokio::test]
async fn echo_serves_concurrent_and_sequential_clients() {
    let server = echo(ServerOpts { welcome: None, ..ServerOpts::default() }).await;
    let client = |i: usize| {
        let (addr, url) = (server.addr, server.url());
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (mut ws, _) = client_async(url, tcp).await.unwrap();
            ws.send(Message::text(format!("m{i}"))).await.unwrap();
            assert_eq!(next(&mut ws).await.unwrap(), Message::text(format!("m{i}")));
        }
    };
    futures_util::future::join_all((0..8).map(client)).await;
    for i in 8..11 {
        client(i).await;
    }
    // A client that vanishes mid-request must not disturb the server.
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    drop(half);
    client(11).await;
    assert_eq!(server.connections(), 13);
    let mut received = server.received();
    received.sort();
    assert_eq!(received.len(), 12);
}

#[tokio::test]
async fn echo_answers_the_first_offered_subprotocol_and_records_requests() {
    let server = echo(ServerOpts::default()).await;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "jwt-auth, other".parse().unwrap());
    request.headers_mut().insert("Authorization", "Bearer t0k3n".parse().unwrap());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (_ws, response) = client_async(request, tcp).await.expect("upgrade");
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "jwt-auth");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].starts_with("GET /ws HTTP/1.1\r\n"));
    assert!(requests[0].contains("Bearer t0k3n"));
}

#[tokio::test]
async fn echo_handshake_delay_is_respected() {
    let server = echo(ServerOpts { handshake_delay: DELAY, ..ServerOpts::default() }).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    client_async(server.url(), tcp).await.expect("upgrade");
    assert_took(start.elapsed(), DELAY);
}

#[tokio::test]
async fn echo_first_message_delay_is_respected() {
    let server = echo(ServerOpts { first_message_delay: DELAY, ..ServerOpts::default() }).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    let (mut ws, _) = client_async(server.url(), tcp).await.expect("upgrade");
    assert!(start.elapsed() < SLACK, "the 101 itself is not delayed");
    assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
    assert_took(start.elapsed(), DELAY);
}

#[tokio::test]
async fn echo_pong_delay_is_respected() {
    let server = echo(ServerOpts { pong_delay: DELAY, ..ServerOpts::default() }).await;
    let mut ws = upgrade(&server).await.unwrap();
    next(&mut ws).await.unwrap();
    for _ in 0..2 {
        let start = Instant::now();
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        assert_eq!(next(&mut ws).await.unwrap(), Message::Pong(b"p".to_vec().into()));
        assert_took(start.elapsed(), DELAY);
    }
}

#[tokio::test]
async fn echo_close_delay_is_respected() {
    let server = echo(ServerOpts { close_delay: DELAY, ..ServerOpts::default() }).await;
    let mut ws = upgrade(&server).await.unwrap();
    next(&mut ws).await.unwrap();
    let start = Instant::now();
    ws.close(None).await.unwrap();
    assert!(matches!(next(&mut ws).await.unwrap(), Message::Close(_)));
    assert_took(start.elapsed(), DELAY);
}

#[tokio::test]
async fn push_plays_its_script_once_per_connection() {
    let script = vec![
        Push::Text(Duration::from_millis(20), "started".into()),
        Push::Text(Duration::from_millis(30), "completed".into()),
    ];
    let server = push(ServerOpts::default(), script).await;
    let mut ws = upgrade(&server).await.unwrap();
    next(&mut ws).await.unwrap();
    let start = Instant::now();
    ws.send(Message::text("go")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text("started"));
    assert_took(start.elapsed(), Duration::from_millis(20));
    assert_eq!(next(&mut ws).await.unwrap(), Message::text("completed"));
    assert_took(start.elapsed(), Duration::from_millis(50));
    // A second message is recorded but does not replay the script.
    ws.send(Message::text("again")).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(100), next(&mut ws)).await;
    assert!(quiet.is_err(), "the script replayed: {quiet:?}");
    assert_eq!(server.received(), vec!["go".to_owned(), "again".to_owned()]);
}

#[tokio::test]
async fn push_can_close_mid_scenario() {
    let script = vec![
        Push::Text(Duration::ZERO, "started".into()),
        Push::Close(Duration::from_millis(20), 1011, "boom".into()),
    ];
    let server = push(ServerOpts::default(), script).await;
    let mut ws = upgrade(&server).await.unwrap();
    next(&mut ws).await.unwrap();
    ws.send(Message::text("go")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text("started"));
    match next(&mut ws).await.unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Error);
            assert_eq!(frame.reason.as_str(), "boom");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_echo_works_only_when_the_certificate_is_trusted() {
    let identity = self_signed(&["localhost", "127.0.0.1"]);
    let tls_delay = DELAY;
    let server = echo(ServerOpts { tls: Some(identity.clone()), tls_delay, ..ServerOpts::default() }).await;
    assert!(server.url().starts_with("wss://localhost:"));
    let name = ServerName::try_from("localhost").unwrap();

    // Trust the certificate through a CA file, as a prober configured with `ca_file` would.
    let ca_file = write_temp(&identity.cert_pem);
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file.path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let connector = TlsConnector::from(client_config_with_roots(roots));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    let tls = connector.connect(name.clone(), tcp).await.expect("TLS handshake");
    assert_took(start.elapsed(), tls_delay);
    let (mut ws, _) = client_async(server.url(), tls).await.expect("upgrade");
    assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
    ws.send(Message::text("secure")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text("secure"));

    let untrusting = TlsConnector::from(client_config_with_roots(RootCertStore::empty()));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let err = untrusting.connect(name, tcp).await.expect_err("untrusted");
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[tokio::test]
async fn status_answers_with_the_http_error() {
    let server = status(404, "no such route").await;
    match upgrade(&server).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn bad_accept_key_is_a_protocol_error() {
    let server = bad_accept_key().await;
    let err = upgrade(&server).await.expect_err("must fail");
    assert!(matches!(err, Error::Protocol(ProtocolError::SecWebSocketAcceptKeyMismatch)), "{err:?}");
}

#[tokio::test]
async fn garbage_is_an_http_parse_error() {
    let server = garbage().await;
    let err = upgrade(&server).await.expect_err("must fail");
    assert!(matches!(err, Error::Protocol(ProtocolError::HttparseError(_))), "{err:?}");
}

#[tokio::test]
async fn huge_frame_exceeds_the_frame_size_limit() {
    let server = huge_frame(1 << 40).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let config = WebSocketConfig::default().max_frame_size(Some(1024)).max_message_size(Some(1024));
    let (mut ws, _) = client_async_with_config(server.url(), tcp, Some(config)).await.expect("upgrade");
    let err = next(&mut ws).await.expect_err("must fail");
    assert!(matches!(err, Error::Capacity(_)), "{err:?}");
}

#[tokio::test]
async fn trickle_sends_one_byte_per_interval_and_never_completes_quickly() {
    let interval = Duration::from_millis(10);
    let server = trickle(interval).await;

    let mut ws = upgrade(&server).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err(), "message completed");

    // Count the raw bytes that arrive in a window.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        got.push(byte[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    let start = Instant::now();
    let mut frame = Vec::new();
    while start.elapsed() < Duration::from_millis(200) {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = timeout(Duration::from_millis(5), tcp.read(&mut buf)).await {
            frame.extend_from_slice(&buf[..n]);
        }
    }
    assert!((15..=25).contains(&frame.len()), "{} bytes", frame.len());
    assert_eq!(frame[..4], [0x81, 126, 0x03, 0xE8]);
}

#[tokio::test]
async fn silent_upgrades_then_says_nothing() {
    let server = silent().await;
    let mut ws = upgrade(&server).await.expect("upgrade");
    ws.send(Message::Ping(Vec::new().into())).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err());
}

#[tokio::test]
async fn no_pong_never_answers_pings() {
    let server = no_pong().await;
    let mut ws = upgrade(&server).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
    ws.send(Message::Ping(Vec::new().into())).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err());
}

#[tokio::test]
async fn no_close_reply_pongs_but_ignores_close() {
    let server = no_close_reply().await;
    let mut ws = upgrade(&server).await.unwrap();
    next(&mut ws).await.unwrap();
    ws.send(Message::Ping(Vec::new().into())).await.unwrap();
    assert!(matches!(next(&mut ws).await.unwrap(), Message::Pong(_)));
    ws.close(None).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err());
}

#[tokio::test]
async fn close_after_welcome_sends_the_close_code() {
    let server = close_after_welcome(4001, "bye").await;
    let mut ws = upgrade(&server).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
    match next(&mut ws).await.unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn reset_after_upgrade_resets_after_the_welcome() {
    let server = reset_after_upgrade().await;
    for _ in 0..3 {
        let mut ws = upgrade(&server).await.expect("upgrade");
        assert_eq!(next(&mut ws).await.unwrap(), Message::text(WELCOME));
        match next(&mut ws).await {
            Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
            other => panic!("expected a reset, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn reset_on_accept_resets_before_any_http() {
    let server = reset_on_accept().await;
    match upgrade(&server).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn blackhole_accepts_and_never_answers() {
    let server = blackhole().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(timeout(QUIET, client_async(server.url(), tcp)).await.is_err());
    assert!(server.wait_connections(1, QUIET).await);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn unaccepting_makes_connect_hang() {
    let (addr, _guard) = unaccepting().await;
    let attempt = timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    assert!(attempt.is_err(), "connect completed: {attempt:?}");
}

#[tokio::test]
async fn refused_addr_refuses() {
    let err = TcpStream::connect(refused_addr()).await.expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn dropping_a_server_stops_it() {
    let server = blackhole().await;
    let addr = server.addr;
    let mut held = TcpStream::connect(addr).await.unwrap();
    assert!(server.wait_connections(1, QUIET).await);
    drop(server);
    // The held connection is closed and the port no longer accepts.
    let mut buf = [0u8; 1];
    let read = timeout(Duration::from_secs(1), held.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let err = TcpStream::connect(addr).await.expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}
