//! Secret canaries: hostile servers echo every configured secret back through every
//! channel they have (close reasons cut in the middle of the secret, error messages
//! matched by `fail_on`, messages shown in `expect` previews, rejected upgrades, health
//! check bodies and versions, a receiver's 4xx answer), and every output of the real
//! binary is searched for the secret, its escaped and encoded forms and every 8-character
//! fragment of them. Also: server text never forges a log line or a Slack mention.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::echoing::{self, Act, Seen};
use common::http::get;
use common::poll::poll;
use common::process::{spawn, Output};

const TOKEN: (&str, &str) = ("CANARY_TOKEN", "Zx\"q\\-canary-Tok3n-8f2kLm9PqR");
const PREFIX: (&str, &str) = ("CANARY_PREFIX", "PfxA1b2c3d4e5f6");
const LONG: (&str, &str) = ("CANARY_LONG", "PfxA1b2c3d4e5f6-and-the-rest-9Xy");
const UNI: (&str, &str) = ("CANARY_UNI", "Ünï\"c\\ode-Secr3t-77xQ");
const HEALTH: (&str, &str) = ("CANARY_HEALTH", "Hc-9aZ\"q\\w-health-Tk55");
const HOOK: (&str, &str) = ("CANARY_HOOK", "Wh-7Yp-hook-Secret-3Mn");
const PASS: (&str, &str) = ("CANARY_PASS", "Pw-Q8rx-pass-Word-61");
const ALL: [(&str, &str); 7] = [TOKEN, PREFIX, LONG, UNI, HEALTH, HOOK, PASS];

/// Every form a secret may take in output: as is, Debug- and JSON-escaped, base64.
fn forms(secret: &str) -> Vec<(String, String)> {
    let debug = format!("{secret:?}");
    let json = serde_json::to_string(secret).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std64 = base64::engine::general_purpose::STANDARD;
    let mut out = vec![
        ("raw".to_owned(), secret.to_owned()),
        ("debug".to_owned(), debug[1..debug.len() - 1].to_owned()),
        ("json".to_owned(), json[1..json.len() - 1].to_owned()),
        ("base64url".to_owned(), b64.encode(secret)),
    ];
    if secret == PASS.1 {
        out.push(("basic".to_owned(), std64.encode(format!("wsprobe:{secret}"))));
    }
    out
}

/// `(secret name, form, what matched)` for every form or 8-character fragment of a
/// secret found in `text`.
fn leaks(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (name, secret) in ALL {
        for (form, value) in forms(secret) {
            let chars: Vec<char> = value.chars().collect();
            let hit = if text.contains(&value) {
                Some(value.clone())
            } else {
                chars.windows(8).map(|w| w.iter().collect::<String>()).find(|f| text.contains(f.as_str()))
            };
            if let Some(h) = hit {
                found.push(format!("{name}/{form}: {h:?}"));
            }
        }
    }
    found
}

fn header(seen: &Seen, name: &str) -> String {
    seen.headers.get(name).cloned().unwrap_or_default()
}

/// The hostile WebSocket service: what it does depends on the path; it always waits for
/// the client's first message (which carries the non-ASCII secret) before acting.
async fn hostile_ws() -> echoing::Running {
    echoing::ws(|seen: &Seen| {
        let token = header(seen, "authorization").trim_start_matches("Bearer ").to_owned();
        let long = header(seen, "x-api-key");
        let prefix = seen.path.split("k=").nth(1).unwrap_or("").to_owned();
        let path = seen.path.split('?').next().unwrap_or("").to_owned();
        if path == "/reject" {
            let echoed: Vec<String> = seen.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            return Act::Reject(401, echoed.join("\n"), vec![("x-echo".into(), token)]);
        }
        Act::OnMessage(Arc::new(move |first: &str| {
            let doc: serde_json::Value = serde_json::from_str(first).unwrap_or_default();
            let uni = doc["hello"].as_str().unwrap_or("").to_owned();
            match path.as_str() {
                // The 64-character cut of the reason falls 10 characters into the token,
                // after multi-byte characters.
                "/close-cut" => Act::Close(4001, format!("{}{}{token}", "é".repeat(20), "x".repeat(34))),
                "/close-uni" => Act::Close(4002, format!("{}{uni}", "é".repeat(45))),
                "/close-long" => Act::Close(4003, format!("k={long} p={prefix}")),
                // The 160-character cut falls inside the JSON-escaped token.
                "/fail-on" => Act::Send(vec![serde_json::json!({
                    "type": "error",
                    "detail": format!("{}{token} {uni} {long}", "d".repeat(140)),
                })
                .to_string()]),
                // The 40-character previews cut into the secrets.
                _ => Act::Send(vec![
                    serde_json::json!({ "type": token }).to_string(),
                    format!("{}{token}", "a".repeat(30)),
                    serde_json::json!({ "type": uni }).to_string(),
                    format!("{}{uni}", "b".repeat(30)),
                ]),
            }
        }))
    })
    .await
}

/// Health endpoints and receivers: `/version` answers 200 with the caller's credentials as
/// its version; everything else answers 4xx with the request echoed in the body.
async fn hostile_http() -> echoing::Running {
    echoing::http(
        |path| match path {
            "/version" => 200,
            "/health" => 401,
            _ => 400,
        },
        |path, request| {
            if path == "/version" {
                let auth = request
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: "))
                    })
                    .unwrap_or("");
                serde_json::json!({ "version": auth }).to_string()
            } else {
                request.to_owned()
            }
        },
    )
    .await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(listen: SocketAddr, ws: SocketAddr, http: SocketAddr) -> String {
    let headers = r#"{ Authorization: "Bearer ${CANARY_TOKEN}", X-Api-Key: "${CANARY_LONG}", X-Jwt: "jwt.${base64url:CANARY_TOKEN}" }"#;
    let steps = r#"[ { send: { json: { hello: "${CANARY_UNI}" } } }, { name: wait, expect: { json: { type: never } }, within: 300ms } ]"#;
    let target = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    url: ws://{ws}/{name}?k=${{CANARY_PREFIX}}\n    headers: {headers}\n    steps: {steps}\n{extra}"
        )
    };
    let health = format!(
        r#"    health:
      - {{ name: auth, url: "http://{http}/health", headers: {{ Authorization: "Bearer ${{CANARY_HEALTH}}" }}, interval: 300ms }}
      - {{ name: version, url: "http://{http}/version", headers: {{ Authorization: "Bearer ${{CANARY_HEALTH}}" }}, version_path: version, interval: 300ms }}
"#
    );
    let targets = [
        target("close-cut", ""),
        target("close-uni", ""),
        target("close-long", ""),
        target("fail-on", "    fail_on: [ { json: { type: error } } ]\n"),
        target("expect", ""),
        target("reject", &health),
    ]
    .concat();
    format!(
        r#"listen: {listen}
defaults:
  interval: 200ms
  jitter: 0%
  timeouts: {{ handshake: 1s, close: 300ms }}
targets:
{targets}alerting:
  resend_interval: 1s
  max_attempts: 1
  detector:
    probe_failing: {{ for: 0s }}
  webhooks:
    - {{ name: hook, url: "http://wsprobe:${{CANARY_PASS}}@{http}/hook", headers: {{ X-Token: "${{CANARY_HOOK}}" }} }}
    - {{ name: slack, url: "http://{http}/slack?token=${{CANARY_HOOK}}", format: slack }}
"#
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    ALL.to_vec()
}

/// Runs the daemon for a few seconds; returns every output it produced, by channel.
async fn run_daemon(
    dir: &Path,
    label: &str,
    ws: SocketAddr,
    http: SocketAddr,
    log_format: &str,
    rust_log: Option<&str>,
) -> Vec<(String, String)> {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.join(format!("{label}.yaml"));
    std::fs::write(&path, config(listen, ws, http)).unwrap();
    let record = dir.join(format!("{label}.jsonl"));
    let mut env = env();
    if let Some(level) = rust_log {
        env.push(("RUST_LOG", level));
    }
    let args = [
        "--log-format",
        log_format,
        "run",
        "-c",
        path.to_str().unwrap(),
        "--record",
        record.to_str().unwrap(),
    ];
    let (mut child, lines) = spawn(&args, &env, Output::Stderr);
    // Long enough for every target to fail a few times, health checks to run and alerts to
    // fire and be delivered (and refused).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut api = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{label}: the daemon never listened: {:?}",
                lines.try_iter().collect::<Vec<_>>()
            );
            continue;
        }
        let Ok(alerts) = tokio::time::timeout(Duration::from_secs(2), get(listen, "/api/alerts")).await
        else {
            continue;
        };
        let firing = alerts.body.matches("ProbeFailing").count();
        if firing >= 6 || Instant::now() > deadline {
            // One more resend interval so the receivers answer at least once.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            for p in ["/metrics", "/api/targets", "/api/alerts"] {
                api.push((format!("{label} {p}"), get(listen, p).await.body));
            }
            break;
        }
    }
    child.signal("TERM");
    child.wait_exit(Duration::from_secs(10));
    let stderr: Vec<String> = lines.try_iter().collect();
    let mut out = vec![(format!("{label} stderr"), stderr.join("\n"))];
    out.extend(api);
    out.push((format!("{label} record"), std::fs::read_to_string(&record).unwrap_or_default()));
    out
}

fn run_once(dir: &Path, format: &str, ws: SocketAddr, http: SocketAddr) -> Vec<(String, String)> {
    let path = dir.join(format!("once-{format}.yaml"));
    std::fs::write(&path, config("127.0.0.1:0".parse().unwrap(), ws, http)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["once", "-c", path.to_str().unwrap(), "--format", format])
        .envs(env())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "every target fails");
    vec![
        (format!("once {format} stdout"), String::from_utf8_lossy(&out.stdout).into_owned()),
        (format!("once {format} stderr"), String::from_utf8_lossy(&out.stderr).into_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output() {
    let ws = hostile_ws().await;
    let http = hostile_http().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = tokio::join!(
        run_daemon(dir.path(), "text-info", ws.addr, http.addr, "text", None),
        run_daemon(dir.path(), "json-debug", ws.addr, http.addr, "json", Some("debug")),
        run_daemon(dir.path(), "text-trace", ws.addr, http.addr, "text", Some("trace")),
    );
    let (ws_addr, http_addr, d) = (ws.addr, http.addr, dir.path().to_owned());
    let once = tokio::task::spawn_blocking(move || {
        let mut o = run_once(&d, "text", ws_addr, http_addr);
        o.extend(run_once(&d, "json", ws_addr, http_addr));
        o
    })
    .await
    .unwrap();
    let requests = http.requests();
    // What the receivers got, bodies only: their own credentials in the request head
    // are the point of configuring them.
    let bodies: Vec<String> = requests
        .iter()
        .filter(|r| r.starts_with("POST"))
        .map(|r| r.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned())
        .collect();
    assert!(!bodies.is_empty(), "the receivers got notifications");
    // Userinfo travels as Basic authorization, never in `Host`.
    let hook: Vec<&String> = requests.iter().filter(|r| r.starts_with("POST /hook")).collect();
    assert!(!hook.is_empty(), "the webhook with credentials in its URL was called");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("wsprobe:{}", PASS.1));
    for r in &hook {
        let head: Vec<&str> = r.split("\r\n\r\n").next().unwrap().lines().collect();
        assert!(head.contains(&format!("Host: {}", http.addr).as_str()), "{head:?}");
        assert!(head.contains(&format!("Authorization: Basic {basic}").as_str()), "{head:?}");
    }
    let mut channels: Vec<(String, String)> = [a, b, c, once].concat();
    channels.push(("receiver bodies".into(), bodies.join("\n")));

    // The hostile channels were exercised: without them this test would prove nothing.
    let all = channels.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
    for expected in [
        "unexpected_close",
        "error_message",
        "expect_timeout",
        "handshake_status",
        "Could not deliver an alert notification",
    ] {
        assert!(all.contains(expected), "no `{expected}` in any output");
    }

    let mut report = Vec::new();
    for (channel, text) in &channels {
        for leak in leaks(text) {
            report.push(format!("{channel}: {leak}"));
        }
    }
    assert!(report.is_empty(), "{} leaks:\n{}", report.len(), report.join("\n"));
}

/// A version string is server text: one with a newline must not forge a log line, an
/// alert, or a line of `wsprobe once`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_with_a_newline_forges_no_line() {
    let ws = echoing::ws(|_: &Seen| Act::Send(Vec::new())).await;
    let http = echoing::http(
        |_| 200,
        |_, _| serde_json::json!({ "version": "1.0\n2026-01-01T00:00:00Z ERROR forged" }).to_string(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let yaml = format!(
        "listen: {listen}\ndefaults:\n  interval: 1s\ntargets:\n  - name: agent\n    url: ws://{}/\n    server_speaks_first: false\n    health:\n      - {{ name: version, url: \"http://{}/version\", version_path: version, expected_version: \"1.1\", interval: 200ms }}\n",
        ws.addr, http.addr
    );
    let path = dir.path().join("forge.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (mut child, lines) =
        spawn(&["--log-format", "text", "run", "-c", path.to_str().unwrap()], &[], Output::Stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("Deployment drift")) {
        assert!(Instant::now() < deadline, "no drift logged: {seen:?}");
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    child.signal("TERM");
    child.wait_exit(Duration::from_secs(10));
    seen.extend(lines.try_iter());
    let forged: Vec<&String> = seen.iter().filter(|l| l.starts_with("2026-01-01T00:00:00Z")).collect();
    assert!(forged.is_empty(), "forged log lines: {forged:?}");
    let changed: Vec<&String> = seen.iter().filter(|l| l.contains("The live version changed.")).collect();
    assert_eq!(changed.len(), 1, "{seen:?}");
    assert!(changed[0].contains(r"1.0\n2026-01-01T00:00:00Z ERROR forged"), "{}", changed[0]);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["once", "-c", path.to_str().unwrap(), "--format", "text"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")), "{stdout}");
    assert!(stdout.contains(r"version 1.0\n2026-01-01T00:00:00Z ERROR forged"), "{stdout}");
}

/// Credentials in an Alertmanager URL reach a real Alertmanager as Basic authorization:
/// with them in `Host`, it refused every notification and alerts were never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_with_credentials_in_its_url_gets_the_alerts() {
    let am = common::alertmanager::Alertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let yaml = format!(
        "listen: {listen}\ndefaults:\n  interval: 100ms\ntargets:\n  - name: down\n    url: ws://{}/\nalerting:\n  resend_interval: 1s\n  max_attempts: 1\n  detector: {{ probe_failing: {{ for: 0s }} }}\n  alertmanagers: [ {{ url: \"http://wsprobe:${{CANARY_PASS}}@{}\" }} ]\n",
        common::refused_addr(),
        am.addr
    );
    let path = dir.path().join("am.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (_child, lines) = spawn(&["run", "-c", path.to_str().unwrap()], &[PASS], Output::Stderr);
    let (am, lines) = (&am, &lines);
    let delivered = poll(Duration::from_secs(15), Duration::from_millis(200), || async move {
        let alerts = am.alerts().await;
        if alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "ProbeFailing" && a["labels"]["target"] == "down")
        {
            return Ok(());
        }
        let logs: Vec<String> = lines.try_iter().collect();
        for l in &logs {
            assert!(!l.contains(PASS.1), "password in a log line: {l}");
        }
        Err(logs)
    });
    delivered.await.unwrap_or_else(|logs| panic!("no alert reached Alertmanager; logs: {logs:?}"));
}

/// At `RUST_LOG=trace` the WebSocket library logs the upgrade request with its headers;
/// wsprobe caps it at `info` unless `WSPROBE_LOG_UNSAFE_DEBUG=1` asks otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_trace_logs_are_capped_unless_asked_for() {
    let ws = echoing::ws(|_: &Seen| Act::Send(Vec::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.yaml");
    let yaml = format!(
        "targets:\n  - name: agent\n    url: ws://{}/\n    server_speaks_first: false\n    headers: {{ Authorization: \"Bearer ${{CANARY_TOKEN}}\" }}\n",
        ws.addr
    );
    std::fs::write(&path, yaml).unwrap();
    let run = move |unsafe_debug: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"));
        cmd.args(["--log-format", "text", "once", "-c", path.to_str().unwrap()])
            .env("RUST_LOG", "trace")
            .env(TOKEN.0, TOKEN.1);
        if unsafe_debug {
            cmd.env("WSPROBE_LOG_UNSAFE_DEBUG", "1");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (capped, opted) = tokio::task::spawn_blocking(move || (run(false), run(true))).await.unwrap();
    assert!(!capped.contains("tungstenite"), "{capped}");
    assert!(leaks(&capped).is_empty(), "{:?}", leaks(&capped));
    assert!(capped.contains("wsprobe"), "wsprobe's own trace logs still show: {capped}");
    // The cap is what keeps them out: asked for, the library's request dump appears.
    assert!(opted.contains("tungstenite"), "{opted}");
    assert!(opted.contains("canary-Tok3n"), "{opted}");
}
