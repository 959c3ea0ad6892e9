//! The status page of `wsprobe demo` in a real headless Chromium: every demo target is on
//! the page, the flaky cycle's ProbeFailing alert appears there, and the held-session
//! target's page lists its sessions; no console error, no request off loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::chromium::Browser;
use common::http::get;

const TARGETS: &str =
    "JSON.stringify([...document.querySelectorAll('tr[data-target]')].map(r => [r.dataset.target, r.dataset.state]))";
const ALERTS: &str =
    "JSON.stringify([...document.querySelectorAll('li[data-alert]')].map(a => [a.dataset.alert, a.dataset.target]))";
const SESSION_ROWS: &str = "document.querySelectorAll('#sessions-h ~ table.sessions tbody tr').length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_shows_every_target_the_flaky_alert_and_the_held_sessions() {
    let (_demo, banner) = common::demo::start("300ms", &[], &[]);
    let origin = format!("http://{}", banner.addr);
    assert_eq!(banner.first_url, format!("{origin}/"), "the banner leads with the status page");

    // The configured targets, as the API lists them.
    let api: serde_json::Value = serde_json::from_str(&get(banner.addr, "/api/targets").await.body).unwrap();
    let mut configured: Vec<String> =
        api["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
    configured.sort();
    assert!(configured.len() >= 4, "{configured:?}");

    let mut browser = Browser::launch().await;
    let tab = browser.tab().await;
    browser.emulate(&tab, 1280, 900, false, false).await;

    // The flaky cycle fails four times in a row about 3 s in at this pace; the page is
    // reloaded until its alert is shown (it resolves again after two successes).
    let deadline = Instant::now() + Duration::from_secs(40);
    let (targets, alerts) = loop {
        browser.navigate(&tab, &format!("{origin}/")).await;
        let targets: Vec<(String, String)> =
            serde_json::from_str(browser.eval(&tab, TARGETS).await.as_str().unwrap()).unwrap();
        let alerts: Vec<(String, String)> =
            serde_json::from_str(browser.eval(&tab, ALERTS).await.as_str().unwrap()).unwrap();
        if alerts.iter().any(|(a, t)| a == "ProbeFailing" && t == "demo-flaky") {
            break (targets, alerts);
        }
        assert!(
            Instant::now() < deadline,
            "no ProbeFailing for demo-flaky on the page within 40 s: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut shown: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    shown.sort();
    assert_eq!(shown, configured, "every demo target on the page; alerts: {alerts:?}");
    let flaky = targets.iter().find(|(t, _)| t == "demo-flaky").unwrap();
    assert!(["failing", "open"].contains(&flaky.1.as_str()), "demo-flaky while its alert fires: {flaky:?}");

    // The held-session target's page lists its three sessions.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.navigate(&tab, &format!("{origin}/targets/demo-stream-session")).await;
        let rows = browser.eval(&tab, SESSION_ROWS).await.as_i64().unwrap_or(0);
        if rows == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the session target's page shows {rows} sessions, not 3");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let errors = browser.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let outside: Vec<String> = browser
        .requests()
        .into_iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")) && u != "about:blank")
        .collect();
    assert!(outside.is_empty(), "requests that left the daemon: {outside:?}");
    browser.close().await;
}
