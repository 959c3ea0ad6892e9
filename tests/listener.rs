//! The HTTP listener cannot be used to knock probing over: thousands of clients that send
//! one byte and stall, against the real binary started at the common 1024-descriptor soft
//! limit, do not make probes fail, do not slow `/metrics`, and are cut after the header
//! read timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::sample;
use common::ServerOpts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Header read timeout given to the daemon (production: 10 s).
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const CLIENTS: usize = 3000;

/// The daemon, killed and reaped when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `wsprobe run` under `ulimit -Sn 1024`; returns it, its API address and the
/// startup log line.
fn spawn(config: &std::path::Path) -> (Daemon, SocketAddr, serde_json::Value) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -Sn 1024 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["--log-format", "json", "run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("WSPROBE_HTTP_HEADER_READ_TIMEOUT", "1s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wsprobe");
    let stderr = child.stderr.take().unwrap();
    let daemon = Daemon(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("daemon logged");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = json["addr"].as_str() {
            return (daemon, addr.parse().unwrap(), json);
        }
    }
}

/// `GET /metrics` within `limit`: the body and how long it took, or `None` on time-out or
/// a refused/closed connection.
async fn scrape(addr: SocketAddr, limit: Duration) -> (Option<String>, Duration) {
    let start = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.starts_with("HTTP/1.1 200").then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))?
    };
    let body = tokio::time::timeout(limit, exchange).await.ok().flatten();
    (body, start.elapsed())
}

fn probes(m: &str, result: &str) -> f64 {
    sample(m, "wsprobe_probes_total", &[("target", "echo"), ("result", result)]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_starve_probes_or_metrics() {
    // The test holds every client socket itself: give it room for them.
    let own = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let clients = CLIENTS.min(usize::try_from(own).unwrap().saturating_sub(500));
    assert!(clients >= 1500, "this machine's descriptor limit ({own}) is too small for the test");

    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0\ndefaults:\n  interval: 100ms\n  jitter: 0%\ntargets:\n  - name: echo\n    url: {}\n",
        server.url()
    );
    std::fs::write(&path, yaml).unwrap();
    let (_daemon, addr, started) = spawn(&path);
    eprintln!("startup: {started}");
    let cap = started["max_connections"].as_u64().unwrap_or(0);

    let (body, _) = scrape(addr, Duration::from_secs(2)).await;
    let m = body.expect("/metrics answers before the attack");
    let (ok0, failed0) = (probes(&m, "success"), probes(&m, "failure"));

    // The attack: each client sends one byte of a request line, then nothing.
    let open = Arc::new(AtomicUsize::new(0));
    let closed_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let attack_start = Instant::now();
    let mut connected = 0;
    for _ in 0..clients {
        let Ok(mut s) = TcpStream::connect(addr).await else { continue };
        if s.write_all(b"G").await.is_err() {
            continue;
        }
        connected += 1;
        let (open, closed_at) = (open.clone(), closed_at.clone());
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // EOF or reset: the daemon closed it. The test ends the wait after 10 s.
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
            open.fetch_sub(1, Ordering::SeqCst);
            closed_at.lock().unwrap().push(Instant::now());
        });
    }
    let attack_done = attack_start.elapsed();

    // Over 3 s: probes keep succeeding, /metrics answers quickly, the connection cap holds.
    let window = Instant::now();
    let (mut worst, mut scrapes, mut unanswered, mut max_open, mut max_server_open) =
        (Duration::ZERO, 0, 0, 0, 0.0f64);
    let mut last = String::new();
    while window.elapsed() < Duration::from_secs(3) {
        max_open = max_open.max(open.load(Ordering::SeqCst));
        let (body, took) = scrape(addr, Duration::from_secs(2)).await;
        worst = worst.max(took);
        scrapes += 1;
        match body {
            Some(m) => {
                max_server_open =
                    max_server_open.max(sample(&m, "wsprobe_http_connections", &[]).unwrap_or(0.0));
                last = m;
            }
            None => unanswered += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if last.is_empty() {
        // No scrape got through: take the probe counts once the attack is over.
        tokio::time::sleep(Duration::from_secs(10)).await;
        last = scrape(addr, Duration::from_secs(5)).await.0.unwrap_or_default();
    }
    let elapsed = window.elapsed() + attack_done;
    let (ok, failed) = (probes(&last, "success") - ok0, probes(&last, "failure") - failed0);
    let refused = sample(&last, "wsprobe_probe_failures_total", &[("reason", "connect_error")]);
    let cut = sample(&last, "wsprobe_http_connections_closed_total", &[("reason", "header_timeout")]);
    let evicted = sample(&last, "wsprobe_http_connections_closed_total", &[("reason", "evicted")]);
    let still_open = open.load(Ordering::SeqCst);
    eprintln!(
        "{connected} slow clients connected in {attack_done:?}; most open at once {max_open} (server side {max_server_open}); \
         probes during {elapsed:?}: {ok} ok, {failed} failed ({refused:?} connect_error); \
         {scrapes} scrapes, {unanswered} unanswered, slowest {worst:?}; \
         closed: header_timeout {cut:?}, evicted {evicted:?}; client sockets still open {still_open}"
    );
    assert_eq!(started["fd_limit_raised_from"], 1024, "the soft limit was raised from 1024");
    assert_eq!(cap, 512, "the listener cap");
    assert_eq!(unanswered, 0, "/metrics did not answer within 2 s, {unanswered} times of {scrapes}");
    assert_eq!(failed, 0.0, "probes failed during the attack:\n{last}");
    let expected = elapsed.as_secs_f64() / 0.1;
    assert!(ok >= 0.8 * expected, "{ok} probes succeeded, about {expected:.0} were due");
    assert!(worst < Duration::from_secs(1), "/metrics took {worst:?}");
    assert!(max_server_open <= cap as f64, "{max_server_open} connections open, cap {cap}");
    assert!(cut.unwrap_or(0.0) >= 1.0, "stalled clients are cut by the header read timeout");
    // Every stalled client was closed by the daemon: evicted at once or cut after 1 s.
    assert_eq!(still_open, 0, "{still_open} stalled clients are still connected after 3 s");
    let last_close = closed_at.lock().unwrap().iter().max().copied().unwrap();
    let held = last_close.duration_since(attack_start);
    assert!(
        held < attack_done + HEADER_TIMEOUT + Duration::from_millis(1500),
        "the last stalled client was held {held:?}"
    );
}

/// A keep-alive connection left idle after a request is closed after the idle timeout
/// (300 ms here), well before the header read timeout (5 s) would apply.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use wsprobe::daemon::{self, Options, Source};
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    std::fs::write(
        &path,
        format!("listen: 127.0.0.1:0\ntargets:\n  - name: echo\n    url: {}\n", server.url()),
    )
    .unwrap();
    let config = wsprobe::config::load(&path).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let listener = wsprobe::listener::Settings {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_millis(300),
        max_connections: 512,
    };
    let options = Options { listener: Some(listener), ..Options::default() };
    let running = daemon::start_with(config, Source::Fixed, cancel.clone(), options).await.unwrap();

    let mut s = TcpStream::connect(running.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"ok\n") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let answered = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await.expect("closed within 3 s");
    let idle = answered.elapsed();
    assert_eq!(n.unwrap_or(0), 0, "EOF, no more data");
    assert!(
        idle >= Duration::from_millis(280) && idle < Duration::from_millis(800),
        "closed after {idle:?} idle (timeout 300 ms)"
    );
    let m = scrape(running.addr, Duration::from_secs(2)).await.0.unwrap();
    assert_eq!(sample(&m, "wsprobe_http_connections_closed_total", &[("reason", "idle_timeout")]), Some(1.0));
    cancel.cancel();
    running.wait().await;
}
