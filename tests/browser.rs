//! The status page in a real headless Chromium, served by the real binary probing real
//! servers: the DOM holds every target in its state and the firing alert, at desktop and
//! phone widths in light and dark mode the screenshots are not blank (and are dark when
//! asked), nothing is logged as an error, and no request leaves loopback.
//!
//! With `WSPROBE_SCREENSHOTS=DIR` the screenshots are also written there
//! (`scripts/screenshots.sh` uses this to refresh `docs/screenshots/`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::chromium::Browser;
use common::health::service;
use common::http::get;
use common::poll::poll;
use common::process::{self, ChildGuard, Output};
use common::ServerOpts;

/// Runs the real binary with JSON logs; returns it and the API address.
fn spawn_daemon(config: &std::path::Path) -> (ChildGuard, SocketAddr, Receiver<String>) {
    let config = config.to_str().unwrap();
    let (child, lines) = process::spawn(
        &["--log-format", "json", "run", "--config", config],
        &[("RUST_LOG", "info")],
        Output::Stderr,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("daemon logged its address");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = json["addr"].as_str() {
            return (child, addr.parse().unwrap(), lines);
        }
    }
}

/// What a screenshot holds: distinct colours, the share of pixels unlike the top-left
/// (background) one, and the background's luminance (0-255).
struct Picture {
    width: u32,
    height: u32,
    colours: usize,
    content_share: f64,
    background_luma: f64,
}

fn inspect(png_bytes: &[u8]) -> Picture {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels: Vec<[u8; 3]> =
        buf[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    let background = pixels[0];
    let colours = pixels.iter().collect::<HashSet<_>>().len();
    let content = pixels.iter().filter(|p| **p != background).count();
    let [r, g, b] = background.map(f64::from);
    Picture {
        width: info.width,
        height: info.height,
        colours,
        content_share: content as f64 / pixels.len() as f64,
        background_luma: 0.2126 * r + 0.7152 * g + 0.0722 * b,
    }
}

const STATES: &str = "JSON.stringify([...document.querySelectorAll('tr[data-target]')].map(r => [r.dataset.target, r.dataset.state, r.querySelector('.state').textContent]))";
const ALERTS: &str = "JSON.stringify([...document.querySelectorAll('li[data-alert]')].map(a => [a.dataset.alert, a.dataset.target, a.querySelector('.description').textContent]))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_chromium_at_every_size_and_scheme_and_stays_on_loopback() {
    // A real agent-like service with some latency per phase, a drifting deployment, a
    // target that is down, and one whose breaker opens.
    let opts = ServerOpts {
        handshake_delay: Duration::from_millis(15),
        first_message_delay: Duration::from_millis(8),
        pong_delay: Duration::from_millis(4),
        close_delay: Duration::from_millis(3),
        ..ServerOpts::default()
    };
    let agent = common::echo(opts.clone()).await;
    let drifting = common::echo(opts).await;
    let (svc, _svc_state) = service().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsprobe.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0
defaults:
  interval: 200ms
  jitter: 0%
  timeouts: {{ connect: 300ms }}
  circuit_breaker: {{ failure_threshold: 1000 }}
targets:
  - name: staging-agent
    url: {agent}
    steps:
      - name: welcome
        expect: {{ json: {{ type: welcome }} }}
        within: 1s
      - name: request
        send: {{ json: {{ type: execute_agent, message: synthetic check }} }}
      - name: agent_completed
        expect: {{ json: {{ type: execute_agent }} }}
        within: 1s
      - ping: {{}}
      - close: {{}}
  - name: staging-version
    url: {drifting}
    health:
      - name: version
        url: http://{svc}/health
        interval: 200ms
        version_path: version
        expected_version: 1.4.2
  - name: staging-down
    url: ws://{closed}/ws
  - name: staging-tripped
    url: ws://{closed}/ws
    circuit_breaker: {{ failure_threshold: 2, recovery_timeout: 1h }}
alerting:
  resend_interval: 1s
",
        agent = agent.url(),
        drifting = drifting.url(),
    );
    std::fs::write(&config, yaml).unwrap();
    let (_daemon, addr, _logs) = spawn_daemon(&config);
    let origin = format!("http://{addr}");

    // Let every target report and the alert fire before looking.
    let ready = poll(Duration::from_secs(15), Duration::from_millis(100), || async {
        let api: serde_json::Value =
            serde_json::from_str(&get(addr, "/api/alerts").await.body).unwrap_or_default();
        let firing = api["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["state"] == "firing"));
        let targets: serde_json::Value =
            serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap_or_default();
        let reported = targets["targets"].as_array().is_some_and(|t| {
            t.iter().all(|t| !t["last_result"].is_null())
                && t.iter().any(|t| t["deployment"]["drift"] == true)
        });
        if firing && reported {
            Ok(())
        } else {
            Err(format!("{api}\n{targets}"))
        }
    });
    ready.await.unwrap_or_else(|e| panic!("the daemon did not settle: {e}"));
    // A few more probes for the sparklines.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let save = std::env::var_os("WSPROBE_SCREENSHOTS").map(std::path::PathBuf::from);
    let mut browser = Browser::launch().await;
    let tab = browser.tab().await;
    let sizes = [("desktop", 1280, 900, false), ("phone", 390, 844, true)];
    for (size, width, height, mobile) in sizes {
        for dark in [false, true] {
            let scheme = if dark { "dark" } else { "light" };
            browser.emulate(&tab, width, height, mobile, dark).await;

            browser.navigate(&tab, &format!("{origin}/")).await;
            let states: Vec<(String, String, String)> =
                serde_json::from_str(browser.eval(&tab, STATES).await.as_str().unwrap()).unwrap();
            let mut seen: Vec<(&str, &str)> =
                states.iter().map(|(t, s, _)| (t.as_str(), s.as_str())).collect();
            seen.sort();
            assert_eq!(
                seen,
                [
                    ("staging-agent", "ok"),
                    ("staging-down", "failing"),
                    ("staging-tripped", "open"),
                    ("staging-version", "drift")
                ],
                "{states:?}"
            );
            let labels: Vec<&str> = states.iter().map(|(_, _, l)| l.as_str()).collect();
            assert!(labels.contains(&"open circuit") && labels.contains(&"failing"), "{labels:?}");
            let alerts: Vec<(String, String, String)> =
                serde_json::from_str(browser.eval(&tab, ALERTS).await.as_str().unwrap()).unwrap();
            let failing = alerts.iter().find(|(a, t, _)| a == "ProbeFailing" && t == "staging-down");
            let failing = failing.unwrap_or_else(|| panic!("no ProbeFailing for staging-down: {alerts:?}"));
            assert!(failing.2.contains("consecutive failures"), "{failing:?}");
            assert_eq!(browser.eval(&tab, "document.scripts.length").await, 0);
            // Readable on a phone: nothing wider than the screen.
            let overflow =
                browser.eval(&tab, "document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().unwrap() <= 0, "{size} {scheme}: the page is {overflow} px too wide");
            let bg = browser.eval(&tab, "getComputedStyle(document.body).backgroundColor").await;
            let expected_bg = if dark { "rgb(13, 17, 23)" } else { "rgb(255, 255, 255)" };
            assert_eq!(bg, expected_bg, "{size} {scheme}");
            check_picture(
                &browser.screenshot(&tab).await,
                size,
                scheme,
                "overview",
                width,
                height,
                save.as_deref(),
            );

            browser.navigate(&tab, &format!("{origin}/targets/staging-agent")).await;
            let facts = browser.eval(&tab, "document.querySelector('h1').dataset.state + '|' + document.querySelectorAll('table.results tbody tr').length + '|' + [...document.querySelectorAll('table.timings th[scope=row]')].map(t => t.textContent).join(',')").await;
            let facts = facts.as_str().unwrap();
            let parts: Vec<&str> = facts.split('|').collect();
            assert_eq!(parts[0], "ok", "{facts}");
            assert!(parts[1].parse::<usize>().unwrap() >= 5, "{facts}");
            for row in ["handshake", "first_message", "step agent_completed"] {
                assert!(parts[2].split(',').any(|r| r == row), "no `{row}` timing: {facts}");
            }
            let overflow =
                browser.eval(&tab, "document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().unwrap() <= 0, "{size} {scheme} target page: {overflow} px too wide");
            check_picture(
                &browser.screenshot(&tab).await,
                size,
                scheme,
                "target",
                width,
                height,
                save.as_deref(),
            );
        }
    }

    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let requests = browser.requests();
    // The two pages in four looks, and nothing else: no asset, no favicon, no beacon.
    assert_eq!(requests.len(), 8, "{requests:?}");
    let outside: Vec<&String> =
        requests.iter().filter(|u| !u.starts_with(&format!("{origin}/")) && *u != "about:blank").collect();
    assert!(outside.is_empty(), "requests that left the daemon: {outside:?}");
    browser.close().await;
}

fn check_picture(
    png: &[u8],
    size: &str,
    scheme: &str,
    page: &str,
    width: u32,
    height: u32,
    save: Option<&std::path::Path>,
) {
    let pic = inspect(png);
    assert_eq!((pic.width, pic.height), (width, height), "{page} {size} {scheme}");
    // Text, badges and pictures: many colours, and a fair share of the screen drawn on.
    assert!(pic.colours >= 20, "{page} {size} {scheme}: only {} colours", pic.colours);
    assert!(pic.content_share > 0.03, "{page} {size} {scheme}: {:.3} of pixels drawn", pic.content_share);
    if scheme == "dark" {
        assert!(pic.background_luma < 40.0, "{page} {size} dark: background luma {}", pic.background_luma);
    } else {
        assert!(pic.background_luma > 230.0, "{page} {size} light: background luma {}", pic.background_luma);
    }
    if let Some(dir) = save {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{page}-{size}-{scheme}.png")), png).unwrap();
    }
}
