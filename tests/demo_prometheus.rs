//! Nothing on the dashboard or in the rules is empty: a real Prometheus scrapes
//! `wsprobe demo` (the real binary) and loads `deploy/prometheus/alerts.yml`, and every
//! dashboard query, and every series selector of every rule, returns data at some point
//! of the run (selectors: a non-zero value, so the open state, the drift, the counted
//! close really happened). Rules are checked by their selectors because their windows
//! (5 minutes to a day) are longer than a test; a selector that never returns data is a
//! rule that cannot fire.
//!
//! The demo runs at `--interval 300ms` and Prometheus scrapes every second, so one flaky
//! cycle (breaker opened and closed, alerts raised and resolved), several drift cycles
//! and failed health checks all happen within about 15 s; the session target's cut
//! stretch starts 3 s in. Grafana's `$__rate_interval` becomes 5s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use regex::Regex;

/// The session series the dashboard and the rules read, all fed by the demo's
/// `demo-stream-session` target.
const SESSION_METRICS: &[&str] = &[
    "wsprobe_sessions_open",
    "wsprobe_sessions_configured",
    "wsprobe_session_connects_total",
    "wsprobe_session_disconnects_total",
    "wsprobe_session_lifetime_seconds",
    "wsprobe_session_ping_rtt_seconds",
    "wsprobe_session_heartbeat_rtt_seconds",
];

/// How long the run may take to fill every expression.
const PATIENCE: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every query of the dashboard (panels and annotations), as Prometheus receives it
/// with the variables expanded: all targets, all locations, a 5 s rate window.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("dashboards/wsprobe.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&dashboard, "", &mut out);
    out.into_iter()
        .map(|(title, q)| {
            let q = q
                .replace("$__rate_interval", "5s")
                .replace("$__interval", "1s")
                .replace("$target", ".*")
                .replace("$location", ".*");
            (format!("dashboard `{title}`"), q)
        })
        .collect()
}

fn walk(v: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let title = map.get("title").or(map.get("name")).and_then(|t| t.as_str()).unwrap_or(title);
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "expr" => out.push((title.to_owned(), s.clone())),
                    _ => walk(v, title, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, title, out)),
        _ => {}
    }
}

/// Every series selector in the rules' expressions (`name{matchers}`, without ranges
/// and offsets), with the alert it belongs to.
fn rule_selectors() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let selector = Regex::new(r#"\b(?:wsprobe_[a-z0-9_]+|up)(?:\{[^}]*\})?"#).unwrap();
    let mut out = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?");
            let expr = rule["expr"].as_str().unwrap();
            for m in selector.find_iter(expr) {
                // `up` alone is a word in no expression but as a metric with matchers.
                if m.as_str() == "up" {
                    continue;
                }
                // Non-zero: a one-hot state or a counter that exists at 0 is no evidence
                // that what the rule watches ever happened.
                out.insert((format!("rule {alert}"), format!("{} != 0", m.as_str())));
            }
        }
    }
    out.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_rule_selector_returns_data_against_the_demo() {
    let (_demo, banner) = common::demo::start("300ms", &[], &[]);
    let rules = root().join("deploy/prometheus/alerts.yml");
    let prometheus = Prometheus::start("wsprobe", banner.addr, &[rules]).await;
    let start = wsprobe::util::time::unix_now();

    let mut pending: Vec<(String, String)> =
        dashboard_queries().into_iter().chain(rule_selectors()).collect();
    assert!(pending.len() >= 60, "expected the dashboard's queries and the rules' selectors: {pending:#?}");
    // The session panels and rules are held to data like the rest: the demo's session
    // target feeds them.
    for metric in SESSION_METRICS {
        assert!(pending.iter().any(|(_, q)| q.contains(metric)), "no query uses `{metric}`");
    }

    let deadline = Instant::now() + PATIENCE;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = wsprobe::util::time::unix_now();
        let mut still = Vec::new();
        for (what, query) in pending {
            if prometheus.query_range(&query, start, now).await.is_empty() {
                still.push((what, query));
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
    }
    let empty: Vec<String> = pending.iter().map(|(what, q)| format!("{what}: {q}")).collect();
    assert!(
        empty.is_empty(),
        "{} expressions returned no data against the demo in {PATIENCE:?}:\n{}",
        empty.len(),
        empty.join("\n")
    );

    // The rules load and evaluate in a real Prometheus without an error.
    let groups = prometheus.api("rules").await;
    let mut evaluated = 0;
    for group in groups["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(
                rule["health"], "ok",
                "rule {} fails to evaluate: {}",
                rule["name"], rule["lastError"]
            );
            evaluated += 1;
        }
    }
    let defined = std::fs::read_to_string(Path::new(&root()).join("deploy/prometheus/alerts.yml"))
        .unwrap()
        .matches("- alert: ")
        .count();
    assert_eq!(evaluated, defined, "Prometheus loaded {evaluated} of the {defined} rules");
}
