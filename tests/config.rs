//! The configuration as users meet it: the binary's messages for invalid files, the
//! merging those messages cannot show, and the exit codes of `check` and `once` (the
//! documented example is `config_example.rs`).
//!
//! Golden tests: every `tests/fixtures/config/invalid-*.yaml` is run through
//! `wsprobe check --config <fixture>` (working directory: the crate root, so the fixture
//! path is `tests/fixtures/config/invalid-….yaml`). It must exit 2, print nothing on
//! stdout, and print exactly its sibling `invalid-….err` on stderr, where `{file}` stands
//! for the fixture path. Every fixture runs with `WSPROBE_FIXTURE_SECRET` set to [`SECRET`]
//! and `WSPROBE_FIXTURE_UNSET` removed; the secret must not appear in any output.
//!
//! To add a fixture, write the `.yaml`, then regenerate the expected messages and review
//! the diff:
//!
//!     WSPROBE_BLESS=1 cargo test --test config
//!
//! Bless mode writes the `.err` files instead of comparing (exit code and secret checks
//! still apply). Fixtures read helper files (`*.pem`) by paths relative to the crate root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::{parse, run, text, wsprobe, SECRET};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wsprobe::probe::Timeouts;

const FIXTURES: &str = "tests/fixtures/config";

// ---------------------------------------------------------------------------------------
// Golden tests

#[test]
fn invalid_configurations_have_exact_messages() {
    let bless = std::env::var_os("WSPROBE_BLESS").is_some_and(|v| v == "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join(FIXTURES))
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("invalid-") && name.ends_with(".yaml")
        })
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 20, "expected the fixture catalogue, found {}", fixtures.len());

    let mut failures = Vec::new();
    for fixture in &fixtures {
        let name = fixture.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        // As printed: relative to the working directory the binary runs in.
        let shown = format!("{FIXTURES}/{name}");
        let out = run(&["check", "--config", &shown]);
        let stderr = text(&out.stderr);
        let stdout = text(&out.stdout);
        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, expected 2\n{stdout}{stderr}", out.status.code()));
            continue;
        }
        if !stdout.is_empty() {
            failures.push(format!("{name}: unexpected stdout:\n{stdout}"));
        }
        if stderr.contains(SECRET) {
            failures.push(format!("{name}: the secret leaked into stderr:\n{stderr}"));
        }
        let err_file = fixture.with_extension("err");
        let as_template = stderr.replace(&shown, "{file}");
        if bless {
            std::fs::write(&err_file, &as_template).expect("write .err");
            continue;
        }
        match std::fs::read_to_string(&err_file) {
            Ok(expected) => {
                let expected = expected.replace("{file}", &shown);
                if stderr != expected {
                    failures.push(format!(
                        "{name}: stderr differs (WSPROBE_BLESS=1 regenerates)\n--- expected\n{expected}--- actual\n{stderr}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: cannot read {}: {e}", err_file.display())),
        }
    }

    // An `.err` without its `.yaml` is a fixture someone renamed or deleted halfway.
    for entry in std::fs::read_dir(root.join(FIXTURES)).expect("fixtures directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "err") && !path.with_extension("yaml").exists() {
            failures.push(format!("{}: no matching .yaml", path.display()));
        }
    }
    assert!(failures.is_empty(), "{} golden failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn missing_variable_is_named_without_any_value() {
    let out = run(&["check", "--config", &format!("{FIXTURES}/invalid-missing-env-var.yaml")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("`WSPROBE_FIXTURE_UNSET` is not set"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(!stderr.contains("Bearer"), "the header's value was printed: {stderr}");
}

#[test]
fn credentials_written_in_a_url_are_not_echoed() {
    let out = run(&["check", "--config", &format!("{FIXTURES}/invalid-url-credentials-and-fragment.yaml")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("has credentials"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stderr.contains("probe:"), "{stderr}");
}

#[test]
fn every_problem_gets_one_line() {
    let shown = format!("{FIXTURES}/invalid-several-problems.yaml");
    let out = run(&["check", "--config", &shown]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 8, "{stderr}");
    for line in lines {
        assert!(line.starts_with(&format!("{shown}: ")), "line does not name the file: {line}");
    }
}

// ---------------------------------------------------------------------------------------
// Library-level merging that the messages cannot show

#[test]
fn a_target_header_replaces_the_default_whatever_its_case() {
    let c = parse(
        "defaults:\n  headers: { authorization: from-defaults, X-Shared: shared }\n\
         targets:\n  - name: t\n    url: ws://127.0.0.1/\n    headers: { Authorization: from-target }\n",
    )
    .unwrap();
    let headers: Vec<(String, String)> =
        c.targets[0].headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.source().to_owned())).collect();
    assert_eq!(
        headers,
        [
            ("x-shared".to_owned(), "shared".to_owned()),
            ("authorization".to_owned(), "from-target".to_owned())
        ]
    );
}

#[test]
fn timeouts_merge_key_by_key() {
    let c = parse(
        "defaults:\n  timeouts: { connect: 3s, ping: 2s }\n\
         targets:\n  - name: t\n    url: ws://127.0.0.1/\n    timeouts: { ping: 1s }\n",
    )
    .unwrap();
    let t = c.targets[0].timeouts;
    assert_eq!(
        t,
        Timeouts { connect: Duration::from_secs(3), ping: Duration::from_secs(1), ..Timeouts::default() }
    );
}

// ---------------------------------------------------------------------------------------
// Command line exit codes

/// A configuration file in a fresh temporary directory.
fn temp_config(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

fn target_yaml(name: &str, url: &str) -> String {
    format!(
        "targets:\n  - name: {name}\n    url: {url}\n    timeouts: {{ connect: 2s, handshake: 2s, first_message: 2s, ping: 2s, close: 2s, probe: 10s }}\n"
    )
}

#[test]
fn check_prints_a_summary_and_exits_0() {
    let (_dir, path) = temp_config(&target_yaml("staging-agent", "wss://api.staging.example.com/ws"));
    let shown = path.display().to_string();
    let out = run(&["check", "--config", &shown]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("{shown}: valid; listen 127.0.0.1:9478; 1 target(s)"));
    assert!(
        lines[1].contains("staging-agent") && lines[1].contains("wss://api.staging.example.com/ws"),
        "{stdout}"
    );
    assert_eq!(lines.len(), 2, "{stdout}");
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let shown = path.display().to_string();
    for command in ["check", "once", "run"] {
        let out = run(&[command, "--config", &shown]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.starts_with(&format!("{shown}: cannot read: ")), "{command}: {stderr}");
    }
}

#[test]
fn once_with_an_unknown_target_exits_2_naming_it() {
    let (_dir, path) = temp_config(&target_yaml("staging-agent", "ws://127.0.0.1:9/ws"));
    let shown = path.display().to_string();
    let out = run(&["once", "--config", &shown, "--target", "nosuch"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{shown}: --target nosuch: no such target")), "{stderr}");
    assert!(stderr.contains("staging-agent"), "known targets are listed: {stderr}");
    assert!(out.stdout.is_empty());
}

/// A loopback port with nothing listening: bound, then released.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn once_against_a_refused_port_exits_1_with_the_json_of_design_md() {
    let url = format!("ws://127.0.0.1:{}/ws", refused_port());
    let (_dir, path) = temp_config(&target_yaml("staging-agent", &url));
    let out = run(&["once", "--config", &path.display().to_string(), "--format", "json"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));

    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let top: Vec<&String> = json.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["results"]);
    let results = json["results"].as_array().expect("results array");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["target"], "staging-agent");
    assert_eq!(r["success"], false);
    assert_eq!(r["reason"], "connect_refused");
    assert_eq!(r["phase"], "connect");
    // Every key of the documented example configuration; additions are allowed, removals are not.
    const DOCUMENTED_KEYS: [&str; 11] = [
        "target",
        "success",
        "reason",
        "phase",
        "step",
        "message",
        "http_status",
        "close_code",
        "duration_seconds",
        "phases",
        "steps",
    ];
    let keys: BTreeSet<&str> = r.as_object().expect("result object").keys().map(String::as_str).collect();
    for key in DOCUMENTED_KEYS {
        assert!(keys.contains(key), "`{key}` missing from {r}");
    }
    assert!(r["phases"].is_object() && r["steps"].is_array(), "{r}");
    assert!(r["duration_seconds"].is_number(), "{r}");
    assert!(r["message"].is_string(), "{r}");
    assert!(r["http_status"].is_null() && r["close_code"].is_null() && r["step"].is_null(), "{r}");
}

/// A healthy WebSocket server: after the upgrade it sends one text message, then reads
/// until the client closes (tungstenite answers pings and the close by itself).
async fn healthy_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                if ws.send(Message::text(r#"{"type":"welcome"}"#)).await.is_err() {
                    return;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_against_a_healthy_server_exits_0() {
    let addr = healthy_server().await;
    let (_dir, path) = temp_config(&target_yaml("staging-agent", &format!("ws://{addr}/ws")));
    let mut cmd = wsprobe();
    cmd.args(["once", "--config", &path.display().to_string()]);
    // The server runs on this runtime; the child is waited for off it.
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let first = stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("staging-agent  ok"), "{stdout}");
    assert!(stdout.contains("1 of 1 targets ok"), "{stdout}");
}

#[test]
fn unusable_arguments_exit_2() {
    for args in [&["nosuch"][..], &["check"], &["once"], &["run"], &[]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "wsprobe {args:?}: {}", text(&out.stderr));
        assert!(!out.stderr.is_empty(), "wsprobe {args:?} explains itself");
    }
    let out = run(&["check"]);
    assert!(text(&out.stderr).contains("--config"), "the missing option is named");
}
