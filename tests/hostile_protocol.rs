//! Servers that break RFC 6455 or HTTP on purpose, in one table: for each, the exact
//! reason and phase the probe must report, and a bound on how long it may take.
//!
//! No case injects a delay, so every probe must end within [`BOUND`] (loopback plus
//! scheduling on a loaded 2-core machine) although every timeout is seconds long: a probe
//! that waits politely for a server that broke the protocol shows up here as too slow.
//! Each probe runs in its own task, so one that panics counts as wrong and the rest of
//! the table still runs; the test fails listing every wrong case.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::hostile::{self, close_frame, masked_frame, raw_frame, switching_with, Then};
use common::FakeServer;
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, Prober, Reason};

const BOUND: Duration = Duration::from_millis(150);

/// How the case's server misbehaves.
enum Server {
    /// A correct 101, then these bytes, then holds the socket.
    After(Vec<u8>),
    /// A correct 101, then these bytes, then closes TCP.
    AfterThenClose(Vec<u8>),
    /// This answer to the upgrade request (given the right accept key), then `Then`.
    Answer(fn(&str) -> String, Then),
    /// A correct 101, pongs, and this code in its reply to the client's close.
    CloseReply(u16),
}

struct Case {
    name: &'static str,
    server: Server,
    /// Extra target YAML.
    extra: &'static str,
    reason: Reason,
    phase: Phase,
    /// Expected `http_status` (handshake cases) or `close_code` (close cases).
    http_status: Option<u16>,
    close_code: Option<u16>,
}

fn case(name: &'static str, server: Server, reason: Reason, phase: Phase) -> Case {
    Case { name, server, extra: "", reason, phase, http_status: None, close_code: None }
}

fn frames(name: &'static str, bytes: Vec<u8>) -> Case {
    case(name, Server::After(bytes), Reason::ProtocolError, Phase::FirstMessage)
}

fn close_code(code: u16, reason: Reason) -> Case {
    let name: &'static str = Box::leak(format!("close code {code}").into_boxed_str());
    Case { close_code: Some(code), ..frames(name, close_frame(code, "")) }.with_reason(reason)
}

fn handshake(name: &'static str, answer: fn(&str) -> String, then: Then, reason: Reason) -> Case {
    case(name, Server::Answer(answer, then), reason, Phase::Handshake)
}

impl Case {
    fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }
    fn status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }
    fn extra(mut self, extra: &'static str) -> Self {
        self.extra = extra;
        self
    }
}

/// A close reason whose quoted form in the failure message crosses byte 200 in the middle
/// of a character: 24 control characters (each shown as six bytes, `\u{1}`), then `€`s.
fn multibyte_close_reason() -> String {
    format!("{}{}", "\u{1}".repeat(24), "€".repeat(20))
}

fn table() -> Vec<Case> {
    let mut cases = vec![
        // Frames after a correct upgrade.
        frames("reserved bit set", raw_frame(0xC1, b"hi")),
        frames("unknown data opcode", raw_frame(0x83, b"hi")),
        frames("unknown control opcode", raw_frame(0x8B, b"")),
        frames("fragmented control frame", raw_frame(0x09, b"")),
        frames("control frame over 125 bytes", raw_frame(0x89, &[b'p'; 126])),
        frames("continuation without a start", raw_frame(0x80, b"x")),
        frames("invalid UTF-8 in a text frame", raw_frame(0x81, &[0xC3, 0x28])),
        frames("masked frame from the server", masked_frame(0x1, b"hi")),
        frames("new message inside a fragmented one", [raw_frame(0x01, b"a"), raw_frame(0x81, b"b")].concat()),
        frames("close frame of one byte", raw_frame(0x88, &[0x03])),
        frames("close reason not UTF-8", raw_frame(0x88, &[0x03, 0xE8, 0xFF])),
        Case {
            close_code: Some(1011),
            ..case(
                "multi-byte close reason",
                Server::After(close_frame(1011, &multibyte_close_reason())),
                Reason::UnexpectedClose,
                Phase::FirstMessage,
            )
        },
        case("101 then EOF", Server::AfterThenClose(Vec::new()), Reason::ConnectionReset, Phase::FirstMessage),
        // The upgrade answer.
        handshake(
            "101 without Upgrade",
            |a| format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\n\r\n"),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "wrong Sec-WebSocket-Accept",
            |_| switching_with("dGhlIHNhbXBsZSBub25jZQ==", ""),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "header block over the limit",
            |a| switching_with(a, &format!("X-Pad: {}\r\n", "x".repeat(70 * 1024))),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "too many header lines",
            |a| switching_with(a, &"X-Many: y\r\n".repeat(200)),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        // Interim answers are skipped (HTTP lets any number precede the real one): the
        // upgrade succeeds, and the server's FIN right after it is what fails the probe.
        Case {
            phase: Phase::FirstMessage,
            ..handshake(
                "100 Continue before 101",
                |a| format!("HTTP/1.1 100 Continue\r\n\r\n{}", switching_with(a, "")),
                Then::Close,
                Reason::ConnectionReset,
            )
        },
        Case {
            phase: Phase::FirstMessage,
            ..handshake(
                "102 and 103 before 101",
                |a| {
                    let interim = "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
                    format!("{interim}{}", switching_with(a, ""))
                },
                Then::Close,
                Reason::ConnectionReset,
            )
        },
        handshake(
            "100 Continue before 404",
            |_| "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
            Then::Hold,
            Reason::HandshakeStatus,
        )
        .status(404),
        handshake(
            "301 redirect",
            |_| "HTTP/1.1 301 Moved Permanently\r\nLocation: ws://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n".into(),
            Then::Hold,
            Reason::HandshakeStatus,
        )
        .status(301),
        handshake(
            "302 redirect",
            |_| "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n".into(),
            Then::Hold,
            Reason::HandshakeStatus,
        )
        .status(302),
        handshake(
            "HTTP/1.0 503 without a body",
            |_| "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n".into(),
            Then::Close,
            Reason::HandshakeStatus,
        )
        .status(503),
        handshake(
            "HTTP/1.0 503 with a body",
            |_| "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nbusy, try later\n".into(),
            Then::Close,
            Reason::HandshakeStatus,
        )
        .status(503),
        handshake(
            "HTTP/1.0 101",
            |a| switching_with(a, "").replacen("HTTP/1.1", "HTTP/1.0", 1),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "extension not offered",
            |a| switching_with(a, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "subprotocol when none was offered",
            |a| switching_with(a, "Sec-WebSocket-Protocol: chat\r\n"),
            Then::Hold,
            Reason::HandshakeInvalid,
        ),
        handshake(
            "subprotocol other than the one offered",
            |a| switching_with(a, "Sec-WebSocket-Protocol: chat\r\n"),
            Then::Hold,
            Reason::HandshakeInvalid,
        )
        .extra("    subprotocols: [jwt-auth]\n"),
    ];
    // Codes no endpoint may put on the wire, then codes a server may send.
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        cases.push(close_code(code, Reason::ProtocolError));
    }
    for code in [1000, 1001, 1012, 1014, 3000, 4999] {
        cases.push(close_code(code, Reason::UnexpectedClose));
    }
    for (code, reason) in [(1005, Reason::ProtocolError), (1015, Reason::ProtocolError)] {
        let name: &'static str = Box::leak(format!("close reply with code {code}").into_boxed_str());
        let c = case(name, Server::CloseReply(code), reason, Phase::Close);
        cases.push(Case { close_code: Some(code), ..c }.extra("    server_speaks_first: false\n"));
    }
    cases
}

async fn start(server: &Server) -> FakeServer {
    match server {
        Server::After(bytes) => hostile::after_upgrade(bytes.clone()).await,
        Server::AfterThenClose(bytes) => hostile::after_upgrade_then(bytes.clone(), Then::Close).await,
        Server::Answer(answer, then) => hostile::answer(*answer, *then).await,
        Server::CloseReply(code) => hostile::close_reply(*code).await,
    }
}

/// Runs one case; `Err` says what was wrong.
async fn run(case: &Case) -> Result<(), String> {
    let server = start(&case.server).await;
    let yaml = format!("targets:\n  - name: t\n    url: {}\n{}", server.url(), case.extra);
    let config = wsprobe::config::parse(Path::new("test.yaml"), &yaml).expect("valid test config");
    let prober = Prober::new(config.targets[0].clone()).expect("prober");
    let started = Instant::now();
    let outcome = tokio::spawn(async move { prober.probe(&CancellationToken::new()).await }).await;
    let took = started.elapsed();
    let r = match outcome {
        Err(e) => return Err(format!("the probe panicked: {e}")),
        Ok(None) => return Err("no result".into()),
        Ok(Some(r)) => r,
    };
    let got = (r.success, r.reason, r.phase);
    let want = (false, Some(case.reason), Some(case.phase));
    if got != want {
        return Err(format!("got {got:?}, want {want:?}: {:?}", r.message));
    }
    if let Some(status) = case.http_status {
        if r.http_status != Some(status) {
            return Err(format!("http_status {:?}, want {status}", r.http_status));
        }
    }
    if let Some(code) = case.close_code {
        if r.close_code != Some(code) {
            return Err(format!("close_code {:?}, want {code}: {:?}", r.close_code, r.message));
        }
        if case.reason == Reason::ProtocolError
            && !r.message.as_deref().unwrap_or("").contains(&format!("code {code}"))
        {
            return Err(format!("the message does not name code {code}: {:?}", r.message));
        }
    }
    // After a bad frame the probe tells the server why it leaves: 1002, protocol error.
    // (A bad close frame is answered by the library's own close reply instead.)
    if matches!(case.server, Server::After(_))
        && case.reason == Reason::ProtocolError
        && case.close_code.is_none()
    {
        // The server reads in its own task: give it a moment to record the close.
        let mut told = server.closes();
        for _ in 0..10 {
            if !told.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            told = server.closes();
        }
        if told != [1002] {
            return Err(format!("the probe sent close codes {told:?}, want [1002]"));
        }
    }
    if took >= BOUND {
        return Err(format!("took {took:?}, bound {BOUND:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn every_hostile_server_gets_its_exact_reason_promptly() {
    let cases = table();
    let mut wrong = Vec::new();
    for case in &cases {
        if let Err(why) = run(case).await {
            wrong.push(format!("{}: {why}", case.name));
        }
    }
    let right = cases.len() - wrong.len();
    assert!(wrong.is_empty(), "{right} of {} cases right; wrong:\n  {}", cases.len(), wrong.join("\n  "));
}

/// Through the real binary: the close reason that used to panic the probe (and let
/// `wsprobe once` print no result and exit 0) is an `unexpected_close`, exit 1.
#[tokio::test]
async fn once_reports_a_multibyte_close_reason_as_a_failure() {
    let server = hostile::after_upgrade(close_frame(1011, &multibyte_close_reason())).await;
    let yaml = format!("targets:\n  - name: multibyte\n    url: {}\n", server.url());
    let config = common::write_temp(&yaml);
    let path = config.path().display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
            .args(["once", "--config", &path, "--format", "json"])
            .output()
            .expect("run wsprobe once")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{stdout}");
    let r = &results[0];
    assert_eq!(
        (&r["target"], &r["success"], &r["reason"], &r["phase"], &r["close_code"]),
        (
            &"multibyte".into(),
            &false.into(),
            &"unexpected_close".into(),
            &"first_message".into(),
            &1011.into()
        ),
        "{stdout}"
    );
}

/// In the daemon: the server that used to kill the target's task with a panic is
/// probed again and again, each probe counted as an `unexpected_close`.
#[tokio::test]
async fn the_daemon_keeps_probing_a_target_whose_close_reason_used_to_panic() {
    let server = hostile::after_upgrade(close_frame(1011, &multibyte_close_reason())).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\ndefaults:\n  interval: 50ms\n  jitter: 0%\ntargets:\n  - name: multibyte\n    url: {}\n",
        server.url()
    );
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &yaml, Default::default()).await;
    let series = r#"wsprobe_probe_failures_total{phase="first_message",reason="unexpected_close",target="multibyte"} "#;
    let counted = common::poll::poll(Duration::from_secs(3), Duration::from_millis(20), || async {
        let body = common::http::get(running.addr, "/metrics").await.body;
        let count: u64 = body
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if count >= 3 {
            Ok(count)
        } else {
            Err(count)
        }
    });
    let count = counted.await.unwrap_or_else(|count| count);
    assert!(count >= 3, "the target stopped being probed: {count} unexpected_close failures counted");
    assert!(server.connections() >= 3);
    cancel.cancel();
    running.wait().await;
}
