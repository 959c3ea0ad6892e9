//! The `/metrics` exposition as Prometheus and the on-call engineer see it.
//!
//! A daemon runs in-process against a tiny WebSocket server and a refused port; its scrape
//! must pass `promtool check metrics` and carry every series and label set the README
//! promises. The dashboard that charts it is checked in `dashboard.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::http::get;
use common::poll::poll;
use common::promtool::promtool;
use common::ServerOpts;
use tokio::time::timeout;
use wsprobe::metrics::{LATENCY_BUCKETS, REVISION, VERSION};

/// Bound on every wait for the daemon: startup, readiness, shutdown.
const PATIENCE: Duration = Duration::from_secs(5);

/// Phases a probe of a plain `ws://` target without steps goes through.
const PLAIN_PHASES: [&str; 6] = ["dns", "connect", "handshake", "first_message", "ping", "close"];

// ---------------------------------------------------------------------------------------
// The daemon, scraped.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_exposition_passes_promtool_and_keeps_the_metric_contract() {
    let server = common::echo(ServerOpts::default()).await;
    let refused = common::refused_addr();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("wsprobe.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0
shutdown_grace: 2s
defaults:
  interval: 200ms
  jitter: 0%
  timeouts: {{ connect: 1s, handshake: 1s, first_message: 1s, ping: 1s, close: 1s, probe: 3s }}
targets:
  - name: greeter
    url: ws://{greeter}/ws
  - name: refused
    url: ws://{refused}/ws
",
            greeter = server.addr
        ),
    )
    .expect("write the configuration");

    let (running, cancel) =
        timeout(PATIENCE, common::daemon::start(&path)).await.expect("the daemon starts in time");
    let addr = running.addr;

    wait_ready(addr).await;
    // Ready means every target has a result; give the metrics the same bounded grace in
    // case they trail the state, then assert on the last scrape whatever it holds.
    let scrape = scrape_until(addr, |s| {
        s.value("wsprobe_probe_success", &[("target", "greeter")]) == Some(1.0)
            && s.value("wsprobe_last_success_timestamp_seconds", &[("target", "greeter")]).is_some()
            && s.value(
                "wsprobe_probe_failures_total",
                &[("target", "refused"), ("phase", "connect"), ("reason", "connect_refused")],
            )
            .is_some()
    })
    .await;

    // Prometheus' own linter has the last word on the format.
    tokio::task::block_in_place(|| promtool_check_metrics(&scrape.text));

    // The documented label sets, exactly.
    scrape.assert_label_names("wsprobe_probe_success", &["target"]);
    scrape.assert_label_names("wsprobe_probes_total", &["target", "result"]);
    scrape.assert_label_names("wsprobe_probe_failures_total", &["target", "phase", "reason"]);
    scrape.assert_label_names("wsprobe_probe_duration_seconds_bucket", &["target", "le"]);
    scrape.assert_label_names("wsprobe_probe_duration_seconds_count", &["target"]);
    scrape.assert_label_names("wsprobe_phase_duration_seconds_bucket", &["target", "phase", "le"]);
    scrape.assert_label_names("wsprobe_last_success_timestamp_seconds", &["target"]);
    scrape.assert_label_names("wsprobe_handshake_status", &["target"]);
    scrape.assert_label_names("wsprobe_build_info", &["version", "revision"]);
    scrape.assert_label_names("wsprobe_circuit_state", &["target", "state"]);
    scrape.assert_label_names("wsprobe_circuit_state_since_timestamp_seconds", &["target"]);

    // The healthy target.
    let greeter = [("target", "greeter")];
    assert_eq!(scrape.series("wsprobe_probe_success", &greeter), 1.0);
    assert!(scrape.series("wsprobe_probes_total", &[("target", "greeter"), ("result", "success")]) >= 1.0);
    // Both results exist from the start, so `rate()` works before the first failure.
    assert_eq!(scrape.series("wsprobe_probes_total", &[("target", "greeter"), ("result", "failure")]), 0.0);
    assert_eq!(scrape.series("wsprobe_handshake_status", &greeter), 101.0);
    let last_success = scrape.series("wsprobe_last_success_timestamp_seconds", &greeter);
    let now = wsprobe::util::time::unix_now();
    assert!(
        (now - 60.0..=now + 1.0).contains(&last_success),
        "wsprobe_last_success_timestamp_seconds is {last_success}, not a Unix time of the last minute (now {now})"
    );
    assert!(scrape.series("wsprobe_probe_duration_seconds_count", &greeter) >= 1.0);
    assert_eq!(
        scrape.bucket_bounds("wsprobe_probe_duration_seconds_bucket", &greeter),
        expected_bounds(),
        "latency histograms use the one documented bucket set, 1 ms to 120 s"
    );
    for phase in PLAIN_PHASES {
        let labels = [("target", "greeter"), ("phase", phase)];
        assert!(
            scrape.series("wsprobe_phase_duration_seconds_count", &labels) >= 1.0,
            "phase `{phase}` was never timed"
        );
        assert_eq!(scrape.bucket_bounds("wsprobe_phase_duration_seconds_bucket", &labels), expected_bounds());
        let inf = [("target", "greeter"), ("phase", phase), ("le", "+Inf")];
        assert_eq!(
            scrape.series("wsprobe_phase_duration_seconds_bucket", &inf),
            scrape.series("wsprobe_phase_duration_seconds_count", &labels),
            "the +Inf bucket of phase `{phase}` equals its count"
        );
    }
    // A plain ws:// target has no TLS phase; none may be invented.
    assert_eq!(
        scrape.value("wsprobe_phase_duration_seconds_count", &[("target", "greeter"), ("phase", "tls")]),
        None
    );

    // The refused target: the failing phase and reason, and no success ever.
    let refused_target = [("target", "refused")];
    assert_eq!(scrape.series("wsprobe_probe_success", &refused_target), 0.0);
    let failures = scrape.series(
        "wsprobe_probe_failures_total",
        &[("target", "refused"), ("phase", "connect"), ("reason", "connect_refused")],
    );
    assert!(failures >= 1.0, "connect_refused counted {failures} times");
    assert!(scrape.series("wsprobe_probes_total", &[("target", "refused"), ("result", "failure")]) >= 1.0);
    assert_eq!(scrape.series("wsprobe_probes_total", &[("target", "refused"), ("result", "success")]), 0.0);
    assert_eq!(scrape.value("wsprobe_last_success_timestamp_seconds", &refused_target), None);
    assert_eq!(scrape.series("wsprobe_handshake_status", &refused_target), 0.0);

    // Which build is running.
    assert_eq!(scrape.series("wsprobe_build_info", &[("version", VERSION), ("revision", REVISION)]), 1.0);

    // Prometheus negotiates the text format by content type.
    let content_type = scrape.content_type.as_deref().unwrap_or("");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "/metrics is served as `{content_type}`, not the Prometheus text format"
    );

    cancel.cancel();
    timeout(PATIENCE, running.wait()).await.expect("the daemon stops within 5 s of cancellation");
}

/// `/readyz` answers 200 within [`PATIENCE`].
async fn wait_ready(addr: SocketAddr) {
    let ready = poll(PATIENCE, Duration::from_millis(25), || async {
        let last = get(addr, "/readyz").await;
        if last.status == 200 {
            Ok(())
        } else {
            Err(last)
        }
    });
    ready.await.unwrap_or_else(|last| {
        panic!("/readyz still answers {} after {PATIENCE:?}: {}", last.status, last.body.trim())
    });
}

/// Scrapes until `done` holds or [`PATIENCE`] runs out; returns the last scrape either way.
async fn scrape_until(addr: SocketAddr, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let scraped = poll(PATIENCE, Duration::from_millis(50), || async {
        let response = get(addr, "/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {}", response.body);
        let scrape = Scrape::parse(&response.body, response.header("content-type"));
        if done(&scrape) {
            Ok(scrape)
        } else {
            Err(scrape)
        }
    });
    scraped.await.unwrap_or_else(|last| last)
}

fn expected_bounds() -> Vec<String> {
    LATENCY_BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]).collect()
}

/// Runs `promtool check metrics` on an exposition; it must exit 0 and say nothing.
fn promtool_check_metrics(exposition: &str) {
    let out = promtool(&["check", "metrics"], exposition);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "`promtool check metrics` rejected the exposition ({}):\n{said}\n--- exposition ---\n{exposition}",
        out.status
    );
}

// ---------------------------------------------------------------------------------------
// Helpers: an exposition parser.

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape with assertions that say what was there instead.
struct Scrape {
    text: String,
    content_type: Option<String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str, content_type: Option<String>) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparsable exposition line: {l}")))
            .collect();
        Self { text: text.to_owned(), content_type, samples }
    }

    /// The value of the series with exactly these labels, if present.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }

    /// Like [`Self::value`], but the series must exist.
    fn series(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            let present: Vec<String> = self
                .samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| format!("{:?} {}", s.labels, s.value))
                .collect();
            panic!("no series {name}{labels:?}; series of that name: {present:#?}")
        })
    }

    /// Every series of `name` has exactly the label names `expected`, and there is one.
    fn assert_label_names(&self, name: &str, expected: &[&str]) {
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        let sets: BTreeSet<BTreeSet<&str>> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.labels.keys().map(String::as_str).collect())
            .collect();
        assert!(!sets.is_empty(), "no series named {name}");
        assert_eq!(sets, BTreeSet::from([expected]), "label names of {name}");
    }

    /// The `le` bounds of a histogram's buckets for the other labels given, in order.
    fn bucket_bounds(&self, bucket_name: &str, labels: &[(&str, &str)]) -> Vec<String> {
        let mut buckets: Vec<(f64, String)> = self
            .samples
            .iter()
            .filter(|s| s.name == bucket_name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .filter(|s| s.labels.len() == labels.len() + 1)
            .filter_map(|s| s.labels.get("le"))
            .map(|le| (le.parse::<f64>().unwrap_or(f64::NAN), le.clone()))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets.into_iter().map(|(_, le)| le).collect()
    }
}

/// `name{k="v",...} value [timestamp]`; label values may hold `\\`, `\"` and `\n`.
fn parse_sample(line: &str) -> Option<Sample> {
    let end = line.find(['{', ' '])?;
    let name = line[..end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_owned(), value);
            inner = &after[close + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name, labels, value })
}

#[test]
fn exposition_parser_reads_labels_escapes_and_special_values() {
    let s = Scrape::parse(
        "# HELP x help\n# TYPE x gauge\nx 1\ny{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 2.5 1700000000\nz_bucket{le=\"+Inf\"} +Inf\n",
        None,
    );
    assert_eq!(s.series("x", &[]), 1.0);
    assert_eq!(s.series("y", &[("a", "1"), ("b", "q\"uo\\te\n")]), 2.5);
    assert_eq!(s.series("z_bucket", &[("le", "+Inf")]), f64::INFINITY);
    assert_eq!(s.value("y", &[("a", "1")]), None, "label sets match exactly");
}
