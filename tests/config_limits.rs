//! The limits `wsprobe check` enforces on what it reads: every duration has a maximum
//! (found by walking real configurations, so a new duration field cannot be forgotten),
//! and oversized or pathological files are refused quickly, with short messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_norway::Value;
use wsprobe::config;
use wsprobe::util::units::HumanDuration;

/// A configuration that writes every duration field the file format has.
const EVERY_DURATION: &str = r#"
shutdown_grace: 10s
defaults:
  interval: 30s
  timeouts: { dns: 5s, connect: 10s, tls: 10s, handshake: 15s, first_message: 10s, ping: 5s, close: 10s, idle: 45s, probe: 2m }
  circuit_breaker: { recovery_timeout: 15s, open_interval: 1m }
targets:
  - name: a
    url: ws://127.0.0.1:1/ws
    interval: 30s
    timeouts: { dns: 5s, connect: 10s, tls: 10s, handshake: 15s, first_message: 10s, ping: 5s, close: 10s, idle: 45s, probe: 2m }
    circuit_breaker: { recovery_timeout: 15s, open_interval: 1m }
    steps:
      - { expect: { text: a }, within: 5s, max_gap: 1s }
      - { expect_all: [ { text: b } ], within: 5s, max_gap: 1s }
      - { hold: 1s, max_gap: 1s }
      - sleep: 1s
      - ping: { timeout: 1s }
      - close: { timeout: 1s }
    health:
      - { name: up, url: "http://127.0.0.1:1/health", timeout: 5s, interval: 1m }
    remote_breakers:
      url: "http://127.0.0.1:1/breakers"
      interval: 30s
      timeout: 5s
      paths: { auth: breakers.auth }
alerting:
  resend_interval: 1m
  alertmanagers: [ { url: "http://127.0.0.1:1", timeout: 5s } ]
  webhooks: [ { url: "http://127.0.0.1:1/hook", timeout: 5s } ]
  detector:
    recent_window: 10m
    baseline_window: 26h
    recent_bucket: 1m
    baseline_bucket: 1h
    probe_failing: { for: 0s, resolve_after: 0s }
    latency: { time_of_day_span: 1h, margin: 20ms, resolve_margin: 10ms, for: 3m, resolve_after: 5m }
    timeouts: { for: 1m, resolve_after: 10m }
    circuit_open: { for: 1m, resolve_after: 0s }
    deployment_drift: { for: 10m, resolve_after: 0s }
"#;

/// Paths (list of keys and indices) of every string that reads as a duration.
fn duration_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::String(s) if s.parse::<HumanDuration>().is_ok() => out.push(at.clone()),
        Value::Mapping(m) => {
            for (k, child) in m {
                at.push(k.as_str().unwrap_or("?").to_owned());
                duration_paths(child, at, out);
                at.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(i.to_string());
                duration_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'v>(v: &'v mut Value, path: &[String]) -> &'v mut Value {
    path.iter().fold(v, |node, key| match node {
        Value::Sequence(items) => &mut items[key.parse::<usize>().unwrap()],
        other => other.get_mut(key.as_str()).unwrap(),
    })
}

/// Each duration set to a value the clock cannot add must be refused, naming its key.
fn assert_every_duration_bounded(source: &str, min_fields: usize) {
    let doc: Value = serde_norway::from_str(source).unwrap();
    config::parse(Path::new("t.yaml"), source).expect("the unmodified configuration is valid");
    let mut paths = Vec::new();
    duration_paths(&doc, &mut Vec::new(), &mut paths);
    assert!(paths.len() >= min_fields, "found only {} durations", paths.len());
    let mut accepted = Vec::new();
    for path in &paths {
        let mut changed = doc.clone();
        *at_path(&mut changed, path) = Value::String("500000000000y".into());
        let text = serde_norway::to_string(&changed).unwrap();
        let key = path.last().unwrap();
        match config::parse(Path::new("t.yaml"), &text) {
            Ok(_) => accepted.push(path.join(".")),
            Err(e) => {
                let named = e.problems.iter().any(|p| p.contains(key.as_str()) && p.contains("too long"));
                assert!(named, "{}: {:?}", path.join("."), e.problems);
            }
        }
    }
    assert!(accepted.is_empty(), "accepted 500000000000y at: {accepted:?}");
}

#[test]
fn every_duration_field_has_a_maximum() {
    // 50 fields: every duration key of every block, targets and defaults both.
    assert_every_duration_bounded(EVERY_DURATION, 50);
}

#[test]
fn every_duration_of_the_shipped_configurations_has_a_maximum() {
    std::env::set_var("STAGING_JWT", "example-jwt-for-tests");
    for file in [
        "config/example.yaml",
        "config/critical-event-delivery.yaml",
        "config/streaming-partial-results.yaml",
    ] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        assert_every_duration_bounded(&text, 5);
    }
}

// ---------------------------------------------------------------------------------------
// Pathological files, through the binary

/// How long `wsprobe check` may take to refuse a pathological file. Unbounded, these
/// inputs take minutes or exhaust memory; a debug build refuses each in under 1 s on an
/// idle machine, and this leaves room for one sharing two cores with a parallel build.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// Runs `wsprobe check`, killing it after `limit`; returns its output and how long it took.
fn check_within(config: &Path, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["check", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("`wsprobe check` took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_huge_file_is_refused_without_being_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    // Sparse: a gigabyte of NULs that costs no disk; it used to be read whole.
    std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
    let (out, took) = check_within(&path, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("{}: the file is larger than 4MiB, the most a configuration may be\n", path.display())
    );
    assert!(took < REFUSED_WITHIN, "{took:?}");
}

#[test]
fn deep_flow_nesting_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    // 100 000 levels: the YAML scanner alone took minutes (10 000 took 2.6 s).
    let n = 100_000;
    std::fs::write(&path, format!("targets: {}{}\n", "[".repeat(n), "]".repeat(n))).unwrap();
    let (out, took) = check_within(&path, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), format!("{}: nested more than 128 levels deep at line 1\n", path.display()));
    assert!(took < REFUSED_WITHIN, "{took:?}");
}

#[test]
fn aliases_cannot_multiply_a_document() {
    // Nine levels of nine aliases each: 387 million strings if expanded. The YAML reader
    // has its own repetition limit; this keeps it in force.
    let names = "abcdefghi".as_bytes();
    let mut lines = vec!["            a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]".to_owned()];
    for w in names.windows(2) {
        let (prev, this) = (w[0] as char, w[1] as char);
        lines.push(format!("            {this}: &{this} [{}]", vec![format!("*{prev}"); 9].join(", ")));
    }
    let yaml = format!(
        "targets:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    steps:\n      - send:\n          json:\n{}\n",
        lines.join("\n")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laughs.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (out, took) = check_within(&path, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), format!("{}: repetition limit exceeded\n", path.display()));
    assert!(took < REFUSED_WITHIN, "{took:?}");
}

#[test]
fn a_megabyte_pattern_is_refused_quickly_and_not_echoed() {
    // 3 MB of pattern (a file of 4MiB is the most read): it took seconds, hundreds of MB,
    // and was printed back whole.
    let pattern = "(a|b)".repeat(600_000);
    let yaml = format!(
        "targets:\n  - name: a\n    url: ws://127.0.0.1:1/ws\n    fail_on: [ {{ text: '{pattern}(' }} ]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regex.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (out, took) = check_within(&path, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("is longer than 4096 bytes, the most a pattern may be"), "{err}");
    assert!(err.len() < 400, "{} bytes of message", err.len());
    assert!(took < REFUSED_WITHIN, "{took:?}");
}
