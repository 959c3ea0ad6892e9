//! `/api/alerts` tells the numbers of the latest evaluation, the same ones sent to
//! Alertmanager, not those of the alert's last state change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::alertmanager::Alertmanager;
use common::daemon::start_yaml;
use common::http::get;
use common::poll::poll;
use wsprobe::daemon::Options;

/// The leading number of "N consecutive failures, last: ...".
fn streak(description: &str) -> Option<u64> {
    description.split(' ').next().and_then(|n| n.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_alerts_shows_the_streak_alertmanager_was_sent() {
    let am = Alertmanager::start().await;
    // A port nobody listens on: every probe fails with connect_refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
defaults:
  interval: 50ms
  jitter: 0%
targets:
  - name: down
    url: ws://{closed}/ws
alerting:
  resend_interval: 1s
  alertmanagers: [ {{ url: 'http://{}' }} ]
",
        am.addr
    );
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;

    // Alertmanager holds the copy re-sent every second; wait until it says 15 or more.
    let sent = poll(Duration::from_secs(20), Duration::from_millis(100), || async {
        let alerts = am.alerts().await;
        let description = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == "ProbeFailing")
            .and_then(|a| a["annotations"]["description"].as_str().map(str::to_owned));
        match description.as_deref().and_then(streak) {
            Some(n) if n >= 15 => Ok(n),
            _ => Err(format!("{alerts:?}")),
        }
    });
    let sent = sent.await.unwrap_or_else(|a| panic!("Alertmanager never saw 15 failures in a row: {a}"));

    let api: serde_json::Value = serde_json::from_str(&get(running.addr, "/api/alerts").await.body).unwrap();
    let alert = api["alerts"].as_array().unwrap().iter().find(|a| a["key"]["kind"] == "ProbeFailing");
    let alert = alert.unwrap_or_else(|| panic!("no ProbeFailing in /api/alerts: {api}"));
    let description = alert["description"].as_str().unwrap();
    assert!(
        description.ends_with(" consecutive failures, last: connect_refused in connect"),
        "{description}"
    );
    // The streak only grows while the target is down, so the view is at least what was sent.
    let shown = streak(description).unwrap();
    assert!(shown >= sent, "/api/alerts says {shown} ({description}), Alertmanager was sent {sent}");
    let value = alert["measurement"]["value"].as_f64().unwrap();
    assert_eq!(value, shown as f64, "{alert}");
    cancel.cancel();
    running.wait().await;
}
