//! A real browser (Debian's headless `chromium`) against the real daemon on loopback: a
//! page on another origin whose script posts to `/-/reload` triggers no reload, and a page reached through a DNS name pointed at 127.0.0.1 (DNS rebinding,
//! simulated with `--host-resolver-rules`) reads nothing from the API.
//!
//! Chromium resolves no other name (`MAP * ~NOTFOUND`; IP literals pass through) and runs with its background
//! networking off, so no traffic leaves loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;
#[path = "listener_security/support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;

use common::http::sample;
use support::{exchange, get, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Runs headless Chromium on `url` and returns the DOM it ends with.
fn chromium(profile: &Path, url: &str) -> String {
    // `timeout`: a wedged browser fails the test instead of hanging it.
    let out = std::process::Command::new("timeout")
        .args([
            "-k",
            "5",
            "40",
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-domain-reliability",
            "--no-pings",
            "--host-resolver-rules=MAP rebind.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--timeout=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("chromium is installed (scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serves `page` as HTML to every request, from a loopback port of its own (another
/// origin than the daemon's).
async fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    page.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(page.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_on_another_origin_cannot_trigger_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &[]);
    let reload = format!("http://{}/-/reload", d.addr);
    // What a hostile page's script can send without the server's consent: a simple
    // cross-origin POST with a text body (no preflight). Synchronous, so it is sent
    // before the load event the DOM is dumped at; its answer is hidden from the page.
    let page = format!(
        r#"<html><body><p id="out">sending</p><script>
try {{ const x = new XMLHttpRequest(); x.open("POST", "{reload}", false); x.send("reload"); }} catch (e) {{}}
document.getElementById("out").textContent = "sent";
</script></body></html>"#
    );
    let reloaded_at =
        |metrics: &str| sample(metrics, "wsprobe_config_last_reload_success_timestamp_seconds", &[]);
    let before = exchange(d.addr, None, &get(d.addr, "/metrics", &[])).await.unwrap().body;
    let evil = serve_page(page).await;
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || chromium(&profile, &format!("http://{evil}/"))
    })
    .await
    .unwrap();

    let metrics = exchange(d.addr, None, &get(d.addr, "/metrics", &[])).await.unwrap().body;
    let refused = sample(&metrics, "wsprobe_http_requests_refused_total", &[("reason", "cross_site")]);
    assert!(dom.contains(">sent<"), "the page ran: {dom}");
    assert_eq!(refused, Some(1.0), "the request was refused; the browser showed: {dom}");
    assert_eq!(reloaded_at(&metrics), reloaded_at(&before), "nothing reloaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebound_dns_name_reads_nothing_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &[]);
    let profile = tempfile::tempdir().unwrap();
    let port = d.addr.port();
    let dom = tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || chromium(&profile, &format!("http://rebind.test:{port}/api/targets"))
    })
    .await
    .unwrap();
    assert!(dom.contains("answers only to localhost"), "the browser got the refusal: {dom}");
    assert!(!dom.contains("nowhere"), "no target data reached the page: {dom}");
    let metrics = exchange(d.addr, None, &get(d.addr, "/metrics", &[])).await.unwrap().body;
    let refused = sample(&metrics, "wsprobe_http_requests_refused_total", &[("reason", "host")]);
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
}
