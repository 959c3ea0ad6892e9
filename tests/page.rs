//! The HTML status page over HTTP from a daemon probing real servers: every target in its
//! state, alerts with their description, a target's page with its last results, and
//! nothing a server sent (close reason, version, message) reaching the HTML unescaped.
//! The history behind the page survives a restart; a bad history file is set aside.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::daemon::start_yaml;
use common::health::service;
use common::hostile::{after_upgrade, close_frame};
use common::poll::poll;
use common::ServerOpts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsprobe::daemon::Options;

/// A GET with `Accept` as a browser sends it: status, head, body.
async fn browse(addr: SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const CLOSE_REASON: &str = "<script>alert('close')</script>";
const VERSION: &str = "<img src=x onerror=alert(1)>";
const ERROR: &str = r#"{"type":"error","detail":"</td><script>alert(\"message\")</script>"}"#;

/// Every `<script` and `<img` the page holds: it writes none itself.
fn assert_no_markup_from_servers(page: &str) {
    for raw in ["<script", "<img", "onerror=alert(1)>", "</td><script>"] {
        assert!(!page.contains(raw), "`{raw}` reached the page unescaped:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_target_in_its_state_and_escapes_what_servers_sent() {
    let healthy = common::echo(ServerOpts::default()).await;
    let closing = after_upgrade(close_frame(4000, CLOSE_REASON)).await;
    let erroring =
        common::echo(ServerOpts { welcome: Some(ERROR.to_owned()), ..ServerOpts::default() }).await;
    let drifting = common::echo(ServerOpts::default()).await;
    let (svc, shared) = service().await;
    shared.set(|s| s.version = VERSION.to_owned());
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
defaults:
  interval: 100ms
  jitter: 0%
  circuit_breaker: {{ failure_threshold: 1000 }}
targets:
  - name: healthy
    url: {}
  - name: closing
    url: {}
    circuit_breaker: {{ failure_threshold: 2, recovery_timeout: 1h }}
  - name: erroring
    url: {}
    fail_on: [ {{ json: {{ type: error }} }} ]
  - name: drifting
    url: {}
    health:
      - name: version
        url: http://{svc}/health
        interval: 100ms
        version_path: version
        expected_version: 1.4.2
alerting:
  resend_interval: 1s
",
        healthy.url(),
        closing.url(),
        erroring.url(),
        drifting.url()
    );
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    let addr = running.addr;

    let want = [("healthy", "ok"), ("closing", "open"), ("erroring", "failing"), ("drifting", "drift")];
    let page = poll(Duration::from_secs(10), Duration::from_millis(100), || async {
        let (status, head, body) = browse(addr, "/", HTML).await;
        let all = want.iter().all(|(t, s)| body.contains(&format!(r#"data-target="{t}" data-state="{s}""#)));
        let alert = body.contains(r#"data-alert="ProbeFailing" data-target="closing""#);
        if status == 200 && all && alert {
            Ok((head, body))
        } else {
            Err(body)
        }
    });
    let (head, page) =
        page.await.unwrap_or_else(|b| panic!("the page never showed every state and the alert:\n{b}"));
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    assert!(head.contains("vary: accept"), "{head}");
    assert_eq!(page.matches("<tr data-target=").count(), 4, "{page}");
    // The alert's description, and the counts line.
    assert!(page.contains("consecutive failures"), "{page}");
    assert!(page.contains(r#"<span class="state open">1 open circuit</span>"#), "{page}");
    // The hostile version is in the overview's version column, escaped.
    assert!(page.contains("<code>&lt;img src=x onerror=alert(1)&gt;</code>"), "{page}");
    assert_no_markup_from_servers(&page);

    // The closing target's page: reason, close code, the close reason in the message.
    let (status, _, closing_page) = browse(addr, "/targets/closing", HTML).await;
    assert_eq!(status, 200);
    assert!(closing_page.contains(r#"<code class="reason">unexpected_close</code>"#), "{closing_page}");
    assert!(closing_page.contains("<dt>Close code</dt><dd>4000</dd>"), "{closing_page}");
    assert!(closing_page.contains("&lt;script&gt;alert(&#39;close&#39;)&lt;/script&gt;"), "{closing_page}");
    assert!(closing_page.contains(r#"<span class="circuit open">open</span>"#), "{closing_page}");
    assert!(
        closing_page.contains("<td data-label=\"From\">closed</td>"),
        "breaker transition: {closing_page}"
    );
    assert_no_markup_from_servers(&closing_page);

    let (_, _, erroring_page) = browse(addr, "/targets/erroring", HTML).await;
    assert!(erroring_page.contains(r#"<code class="reason">error_message</code>"#), "{erroring_page}");
    assert!(erroring_page.contains("&lt;/td&gt;&lt;script&gt;alert("), "{erroring_page}");
    assert_no_markup_from_servers(&erroring_page);

    let (_, _, drifting_page) = browse(addr, "/targets/drifting", HTML).await;
    assert!(
        drifting_page.contains(
            "deployed <code>&lt;img src=x onerror=alert(1)&gt;</code>, expected <code>1.4.2</code>"
        ),
        "{drifting_page}"
    );
    assert!(drifting_page.contains("Deployed and expected version"), "{drifting_page}");
    assert_no_markup_from_servers(&drifting_page);

    let (_, _, healthy_page) = browse(addr, "/targets/healthy", HTML).await;
    assert!(healthy_page.contains("Timings against baseline"), "{healthy_page}");
    assert!(healthy_page.contains(r#"<th scope="row">handshake</th>"#), "{healthy_page}");

    // Plain-text clients keep the text index; an unknown target is a 404 page.
    let (status, head, text) = browse(addr, "/", "*/*").await;
    assert_eq!(status, 200);
    assert!(text.starts_with("wsprobe\n") && head.contains("text/plain"), "{head}\n{text}");
    let (status, _, missing) = browse(addr, "/targets/%3Cb%3Enope", HTML).await;
    assert_eq!(status, 404);
    assert!(missing.contains("No target named <code>&lt;b&gt;nope</code>"), "{missing}");

    cancel.cancel();
    running.wait().await;
}

/// Counts the rows of the "Recent probes" table on a target's page.
fn probe_rows(page: &str) -> usize {
    page.matches(r#"<tr class="ok">"#).count() + page.matches(r#"<tr class="failing">"#).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_survives_a_restart_and_a_bad_file_is_set_aside() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let yaml = |url: &str| {
        format!(
            "listen: 127.0.0.1:0
defaults: {{ interval: 50ms, jitter: 0% }}
targets:
  - name: kept
    url: {url}
alerting:
  state_dir: {}
",
            state.display()
        )
    };
    let (running, cancel) = start_yaml(dir.path(), &yaml(&server.url()), Options::default()).await;
    let addr = running.addr;
    let before = poll(Duration::from_secs(10), Duration::from_millis(50), || async {
        let (_, _, page) = browse(addr, "/targets/kept", HTML).await;
        if probe_rows(&page) >= 5 {
            Ok(probe_rows(&page))
        } else {
            Err(page)
        }
    });
    before.await.unwrap_or_else(|p| panic!("no probes on the page:\n{p}"));
    cancel.cancel();
    running.wait().await;
    let file = state.join("history.json");
    assert!(file.exists(), "no history written at shutdown");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let saved_ok = saved["targets"]["kept"]["results"].as_array().unwrap().len();
    assert!(saved_ok >= 5, "{saved}");

    // Restarted against a port nobody listens on: the old successes are still shown.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (running, cancel) =
        start_yaml(dir.path(), &yaml(&format!("ws://{closed}/ws")), Options::default()).await;
    let (_, _, page) = browse(running.addr, "/targets/kept", HTML).await;
    assert!(
        page.matches(r#"<tr class="ok">"#).count() >= saved_ok.min(wsprobe::history::RESULTS - 5),
        "{page}"
    );
    cancel.cancel();
    running.wait().await;

    // A corrupt file: set aside, the daemon starts with an empty history.
    std::fs::write(&file, b"{\"version\": 1, \"targets\": [").unwrap();
    let (running, cancel) = start_yaml(dir.path(), &yaml(&server.url()), Options::default()).await;
    assert!(state.join("history.json.corrupt").exists());
    let (status, _, page) = browse(running.addr, "/targets/kept", HTML).await;
    assert_eq!(status, 200, "{page}");
    cancel.cancel();
    running.wait().await;
}
