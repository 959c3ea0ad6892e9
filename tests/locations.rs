//! Vantage points: the top-level `labels:` of real `wsprobe run` processes, seen by a real
//! Prometheus (the info metric, the shipped "failing from at least 2 locations" rule) and
//! a real Alertmanager running the shipped example configuration (replicas of one
//! location merge into one alert; locations stay apart, grouped together).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::alertmanager::Alertmanager;
use common::http::get;
use common::prometheus_stack::{self, closed_port, run_wsprobe};
use common::{echo, echoing, ServerOpts};
use serde_norway::Value;

const PAGE: &str = "WSProbeFailingFromLocations";

fn config(location: &str, targets: &[(&str, String)], extra: &str) -> String {
    let list: String =
        targets.iter().map(|(n, url)| format!("  - {{ name: {n}, url: \"{url}\" }}\n")).collect();
    format!(
        "listen: 127.0.0.1:0\nlabels: {{ location: {location} }}\ndefaults: {{ interval: 100ms, jitter: 0% }}\ntargets:\n{list}{extra}"
    )
}

/// The expression of the shipped rule, as Prometheus loads it.
fn page_expr() -> String {
    let rules: Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml"))
            .unwrap(),
    )
    .unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .find(|r| r["alert"] == PAGE)
        .and_then(|r| r["expr"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_page_needs_two_locations_failing() {
    let up = echo(ServerOpts::default()).await;
    let down = format!("ws://127.0.0.1:{}/ws", closed_port());
    let dir = tempfile::tempdir().unwrap();
    // both-down fails everywhere; east-only-down fails from east only; up never fails.
    let east = config(
        "east",
        &[("both-down", down.clone()), ("east-only-down", down.clone()), ("up", up.url())],
        "",
    );
    let west =
        config("west", &[("both-down", down.clone()), ("east-only-down", up.url()), ("up", up.url())], "");
    let east = run_wsprobe(dir.path(), "east", &east, &[]);
    let west = run_wsprobe(dir.path(), "west", &west, &[]);

    let exposed = get(east.addr, "/metrics").await.body;
    assert!(exposed.contains("\nwsprobe_instance_info{location=\"east\"} 1\n"), "{exposed}");

    let prometheus = prometheus_stack::start(&[east.addr, west.addr]).await;
    let info = prometheus.until("wsprobe_instance_info", Duration::from_secs(20), |r| r.len() == 2).await;
    let locations: BTreeSet<&str> = info.iter().map(|(l, _)| l["location"].as_str().unwrap()).collect();
    assert_eq!(locations, BTreeSet::from(["east", "west"]));

    // The shipped rule, loaded by Prometheus from the rules directory, goes pending
    // (its `for: 2m` is covered by the promtool unit tests) for the target failing from
    // both locations.
    let alerts = format!("ALERTS{{alertname=\"{PAGE}\"}}");
    let pending = prometheus
        .until(&alerts, Duration::from_secs(20), |r| r.iter().any(|(l, _)| l["target"] == "both-down"))
        .await;
    assert!(pending.iter().all(|(l, _)| l["target"] == "both-down"), "{pending:?}");
    // east-only-down does fail (from east) all the time, and yet does not page.
    let east_failing =
        prometheus.query("max_over_time(wsprobe_probe_success{target=\"east-only-down\"}[5m]) == 0").await;
    assert_eq!(east_failing.len(), 1, "{east_failing:?}");
    assert_eq!(east_failing[0].0["instance"], east.addr.to_string());
    let value = prometheus.query(&page_expr()).await;
    assert_eq!(value.len(), 1, "{value:?}");
    assert_eq!((value[0].0["target"].as_str(), value[0].1), (Some("both-down"), 2.0));
    let again = prometheus.query(&alerts).await;
    assert!(again.iter().all(|(l, _)| l["target"] == "both-down"), "{again:?}");

    // The dashboard's per-location panel, with every target and location selected.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/wsprobe.json")).unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Is each target up from each location?")
        .expect("the per-location panel");
    let expr =
        panel["targets"][0]["expr"].as_str().unwrap().replace("$target", ".*").replace("$location", ".*");
    let mut up_from: Vec<(String, String, f64)> = prometheus
        .query(&expr)
        .await
        .into_iter()
        .map(|(l, v)| {
            (l["target"].as_str().unwrap().to_owned(), l["location"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    up_from.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let expected = [
        ("both-down", "east", 0.0),
        ("both-down", "west", 0.0),
        ("east-only-down", "east", 0.0),
        ("east-only-down", "west", 1.0),
        ("up", "east", 1.0),
        ("up", "west", 1.0),
    ];
    let expected: Vec<(String, String, f64)> =
        expected.iter().map(|(t, l, v)| ((*t).to_owned(), (*l).to_owned(), *v)).collect();
    assert_eq!(up_from, expected);
}

/// The shipped example configuration, with its receivers on a loopback recorder and a
/// one-second group_wait (30 s there) so the test does not wait for the first notification.
fn shipped_alertmanager_config(receiver: std::net::SocketAddr) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/alertmanager/alertmanager.yml");
    let mut config: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    config["route"]["group_wait"] = "1s".into();
    for r in config["receivers"].as_sequence_mut().unwrap() {
        let name = r["name"].as_str().unwrap().to_owned();
        for hook in r["webhook_configs"].as_sequence_mut().unwrap() {
            hook["url"] = format!("http://{receiver}/{name}").into();
        }
    }
    serde_norway::to_string(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_is_one_alert_and_locations_are_two_alerts_in_one_group() {
    let recorder = echoing::http(|_| 200, |_, _| String::new()).await;
    let am = Alertmanager::start_with(&shipped_alertmanager_config(recorder.addr)).await;
    let down = format!("ws://127.0.0.1:{}/ws", closed_port());
    let alerting = format!(
        "alerting:\n  resend_interval: 1s\n  alertmanagers: [ {{ url: 'http://{}' }} ]\n  detector:\n    probe_failing: {{ failures: 2, for: 0s }}\n",
        am.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let targets = [("agent", down)];
    // Two replicas of one shard in east (the same configuration), one instance in west.
    let east = config("east", &targets, &alerting);
    let _a = run_wsprobe(dir.path(), "east-a", &east, &[]);
    let _b = run_wsprobe(dir.path(), "east-b", &east, &[]);
    let _w = run_wsprobe(dir.path(), "west", &config("west", &targets, &alerting), &[]);

    let groups = || async {
        let body = get(am.addr, "/api/v2/alerts/groups").await.body;
        let groups: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        groups
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let group = loop {
        let all = groups().await;
        let ours: Vec<_> = all
            .iter()
            .filter(|g| g["labels"]["alertname"] == "ProbeFailing" && g["labels"]["target"] == "agent")
            .cloned()
            .collect();
        if ours.len() == 1 && ours[0]["alerts"].as_array().unwrap().len() >= 2 {
            break ours[0].clone();
        }
        assert!(Instant::now() < deadline, "no ProbeFailing group with both locations: {all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Every instance has sent (and re-sent, every second) by now: still two alerts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = groups().await;
    let ours: Vec<_> = all.iter().filter(|g| g["labels"]["alertname"] == "ProbeFailing").collect();
    assert_eq!(ours.len(), 1, "one group for the target: {all:?}");
    let alerts = ours[0]["alerts"].as_array().unwrap();
    let locations: Vec<&str> = alerts.iter().map(|a| a["labels"]["location"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = locations.iter().copied().collect();
    assert_eq!(unique, BTreeSet::from(["east", "west"]), "{alerts:?}");
    assert_eq!(locations.len(), 2, "east's pair merged into one alert: {alerts:?}");
    assert_eq!(group["receiver"]["name"], "pager", "severity page routes to the pager");

    // The grouped notification reached the pager receiver with the location on its alerts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recorder
        .requests()
        .iter()
        .any(|r| r.starts_with("POST /pager") && r.contains("\"location\":\"east\""))
    {
        assert!(Instant::now() < deadline, "no notification to the pager: {:?}", recorder.requests());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
