//! Health checks end to end: an in-process HTTP service (axum on `127.0.0.1:0`) whose
//! status, JSON body, version and remote breaker states the tests flip while a daemon runs
//! in-process; `/metrics` and `/api/targets` must follow each change. Misbehaving endpoints
//! (wrong content type, malformed JSON, an endless body, a redirect loop, a refused port)
//! must each give their reason without disturbing anything else; HTTPS checks time TLS and
//! verify the certificate; a reload drops the series of what it removed; `wsprobe once`
//! (the real binary) fails on a failing check.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::daemon::{start, write_config};
use common::health::{check, failures, health_ok, remote, service, target, until_api, until_metrics};
use common::http::sample;
use common::process::{self, Output};
use common::ServerOpts;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_api_follow_the_service_as_it_changes() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected-version");
    std::fs::write(&expected, "1.4.1\n").unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: svc
    url: {ws}
    health:
      - name: version
        url: http://{svc}/moved
        expect: {{ json: {{ status: ok }} }}
        version_path: version
        expected_version: '${{file:{expected}}}'
    remote_breakers:
      url: http://{svc}/breakers
      interval: 100ms
      paths: {{ auth: circuit_breakers.auth.state, llm: circuit_breakers.llm.state }}
",
            ws = ws.url(),
            expected = expected.display()
        ),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;

    // Healthy, the expected build, auth closed, llm open (written `OPEN`).
    let m = until_metrics(addr, "the first check and poll", |m| {
        health_ok(m, "svc", "version") == Some(1.0)
            && remote(m, "llm", "open") == Some(1.0)
            && sample(m, "wsprobe_deployment_drift", &[("target", "svc")]).is_some()
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "1.4.1")]), Some(1.0));
    assert_eq!(sample(&m, "wsprobe_deployment_drift", &[("target", "svc")]), Some(0.0));
    assert_eq!(sample(&m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]), Some(0.0));
    assert_eq!(remote(&m, "auth", "closed"), Some(1.0));
    assert_eq!(remote(&m, "auth", "open"), Some(0.0));
    assert_eq!(
        sample(&m, "wsprobe_health_http_status", &[("target", "svc"), ("check", "version")]),
        Some(200.0)
    );
    for phase in ["dns", "connect", "first_byte", "total"] {
        let labels = [("target", "svc"), ("check", "version"), ("phase", phase)];
        assert!(
            sample(&m, "wsprobe_health_duration_seconds_count", &labels).is_some_and(|n| n >= 1.0),
            "{phase}"
        );
    }
    // Plain http://: no TLS phase is invented.
    let tls = [("target", "svc"), ("check", "version"), ("phase", "tls")];
    assert_eq!(sample(&m, "wsprobe_health_duration_seconds_count", &tls), None);
    let api =
        until_api(addr, "the API shows the check", |a| check(a, "svc", "version")["success"] == true).await;
    let c = check(&api, "svc", "version");
    assert_eq!(c["redirects"], 1, "/moved redirects to /health: {c}");
    assert_eq!(c["version"], "1.4.1");
    let t = target(&api, "svc");
    assert_eq!(t["deployment"]["live_version"], "1.4.1");
    assert_eq!(t["deployment"]["drift"], false);
    assert_eq!(t["remote_breakers"]["breakers"]["llm"], "open");
    assert_eq!(t["circuit"]["state"], "closed");

    // The service fails its health endpoint.
    shared.set(|s| s.status = 503);
    let m = until_metrics(addr, "the 503 is seen", |m| health_ok(m, "svc", "version") == Some(0.0)).await;
    assert!(failures(&m, "svc", "version", "http_status") >= 1.0);
    assert_eq!(
        sample(&m, "wsprobe_health_http_status", &[("target", "svc"), ("check", "version")]),
        Some(503.0)
    );
    let api =
        until_api(addr, "the API shows the 503", |a| check(a, "svc", "version")["http_status"] == 503).await;
    let c = check(&api, "svc", "version");
    assert_eq!(c["reason"], "http_status");
    assert!(c["message"].as_str().unwrap().starts_with("HTTP 503, expected 200: {"), "{c}");

    // Answers 200 but says it is degraded: the matcher names the field.
    shared.set(|s| {
        s.status = 200;
        s.health = "degraded";
    });
    let api =
        until_api(addr, "body_mismatch", |a| check(a, "svc", "version")["reason"] == "body_mismatch").await;
    let message = check(&api, "svc", "version")["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "the body does not match `expect`: `status` is \"degraded\", expected \"ok\"");

    // A new build goes live before the pipeline records it: drift, and the version label
    // moves rather than multiplies.
    shared.set(|s| {
        s.health = "ok";
        s.version = "1.4.2".to_owned();
    });
    let m = until_metrics(addr, "drift", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "1.4.2")]), Some(1.0));
    assert!(!m.contains("version=\"1.4.1\""), "the old version's series remains:\n{m}");
    let api = until_api(addr, "drift in the API", |a| target(a, "svc")["deployment"]["drift"] == true).await;
    let d = &target(&api, "svc")["deployment"];
    assert_eq!((d["live_version"].as_str(), d["expected_version"].as_str()), (Some("1.4.2"), Some("1.4.1")));
    assert!(d["drift_since"].as_f64().is_some(), "{d}");
    until_metrics(addr, "drift seconds grow", |m| {
        sample(m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]).is_some_and(|s| s > 0.0)
    })
    .await;

    // The pipeline writes the new expectation: drift ends (the file is re-read each check).
    std::fs::write(&expected, "1.4.2\n").unwrap();
    let m = until_metrics(addr, "drift ends", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(0.0)
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]), Some(0.0));

    // A version with characters a label should not carry is sanitized.
    shared.set(|s| s.version = "2.0.0 (beta/\"x\")".to_owned());
    let m = until_metrics(addr, "the sanitized version", |m| {
        sample(m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "2.0.0__beta__x__")])
            == Some(1.0)
    })
    .await;
    assert_eq!(m.lines().filter(|l| l.starts_with("wsprobe_deployment_info{")).count(), 1, "{m}");

    // Remote breakers: `half-open` is understood; a free-form state is `unknown`, never a label.
    shared.set(|s| {
        s.auth = "half-open";
        s.llm = "Tripped!";
    });
    let m = until_metrics(addr, "remote states change", |m| {
        remote(m, "auth", "half_open") == Some(1.0) && remote(m, "llm", "unknown") == Some(1.0)
    })
    .await;
    assert_eq!(remote(&m, "llm", "open"), Some(0.0));
    assert!(!m.contains("Tripped"), "a server string became a label:\n{m}");

    // The breaker endpoint fails: every remote state is unknown, the failure counted.
    shared.set(|s| s.breakers_status = 500);
    let m = until_metrics(addr, "the poll failure", |m| {
        remote(m, "auth", "unknown") == Some(1.0)
            && sample(
                m,
                "wsprobe_remote_breaker_poll_failures_total",
                &[("target", "svc"), ("reason", "http_status")],
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(remote(&m, "auth", "half_open"), Some(0.0));
    let api = until_api(addr, "the poll error in the API", |a| {
        target(a, "svc")["remote_breakers"]["error"].as_str().is_some()
    })
    .await;
    assert_eq!(target(&api, "svc")["remote_breakers"]["reason"], "http_status");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_endpoints_each_get_their_reason_and_probing_goes_on() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let refused = common::refused_addr();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: bad
    url: {ws}
    health:
      - {{ name: html, url: 'http://{svc}/html', expect: {{ json: {{ status: ok }} }} }}
      - {{ name: malformed, url: 'http://{svc}/malformed', version_path: version }}
      - {{ name: endless, url: 'http://{svc}/endless', max_body_size: 256KiB }}
      - {{ name: declared, url: 'http://{svc}/declared' }}
      - {{ name: loop, url: 'http://{svc}/loop/a' }}
      - {{ name: refused, url: 'http://{refused}/health' }}
      - {{ name: text-ok, url: 'http://{svc}/html', expect: {{ text: 'It works' }} }}
",
            ws = ws.url()
        ),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let expected = [
        ("html", "body_mismatch"),
        ("malformed", "body_mismatch"),
        ("endless", "body_too_large"),
        ("declared", "body_too_large"),
        ("loop", "too_many_redirects"),
        ("refused", "connect_refused"),
    ];
    let m = until_metrics(addr, "every check has run", |m| {
        expected
            .iter()
            .all(|(c, reason)| failures(m, "bad", c, reason) >= 1.0 && health_ok(m, "bad", c).is_some())
            && health_ok(m, "bad", "text-ok") == Some(1.0)
    })
    .await;
    for (c, _) in expected {
        assert_eq!(health_ok(&m, "bad", c), Some(0.0), "{c}");
    }

    let api = until_api(addr, "every check in the API", |a| {
        target(a, "bad")["health"].as_array().unwrap().len() == 7
    })
    .await;
    let message = |c: &str| check(&api, "bad", c)["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        message("html"),
        "expected a JSON body, got content type `text/html` (body starts \"<!doctype html><p>It works!</p>\")"
    );
    assert!(message("malformed").starts_with("the body is not valid JSON ("), "{}", message("malformed"));
    assert!(
        message("malformed").ends_with("body starts \"{\\\"status\\\": \\\"ok\\\",\""),
        "{}",
        message("malformed")
    );
    assert_eq!(message("endless"), "the body is larger than max_body_size (256KiB); reading stopped there");
    assert_eq!(message("declared"), "the body is 52428800 bytes, more than max_body_size (1MiB); not read");
    assert_eq!(message("loop"), "redirect loop: /loop/a → /loop/b → /loop/a");
    assert_eq!(message("refused"), format!("connection to {refused} refused"));
    let order: Vec<&str> = target(&api, "bad")["health"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["html", "malformed", "endless", "declared", "loop", "refused", "text-ok"],
        "configuration order"
    );

    // The endless body was cut promptly, and what the server managed to hand over is
    // bounded by the limit plus socket buffers, not by how long the check ran.
    let endless = check(&api, "bad", "endless");
    assert!(endless["duration_seconds"].as_f64().unwrap() < 2.0, "{endless}");
    let sent = shared.endless_sent.load(Ordering::Relaxed);
    assert!(sent < 32 << 20, "one response handed over {sent} bytes before the check hung up");

    // The WebSocket probes of the same target are unaffected.
    let before = sample(&m, "wsprobe_probes_total", &[("target", "bad"), ("result", "success")]).unwrap();
    let m = until_metrics(addr, "probing goes on", |m| {
        sample(m, "wsprobe_probes_total", &[("target", "bad"), ("result", "success")]).unwrap() > before + 1.0
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_probe_success", &[("target", "bad")]), Some(1.0));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[test]
fn once_fails_on_a_failing_health_check() {
    let refused = common::refused_addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(common::echo(ServerOpts::default()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: staging\n    url: {}\n    health: [ {{ name: up, url: 'http://{refused}/' }} ]\n",
            ws.url()
        ),
    );
    let (mut child, lines) =
        process::spawn(&["once", "--config", path.to_str().unwrap()], &[], Output::Stdout);
    let status = child.wait_exit(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(50));
    let out = lines.try_iter().collect::<Vec<_>>().join("\n");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("staging  ok"), "the probe itself succeeded: {out}");
    assert!(out.contains("health `up`  FAIL") && out.contains("connect_refused"), "{out}");
    assert!(out.contains("0 of 1 health checks ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_drops_the_series_of_removed_checks_breakers_and_targets() {
    let (svc, _shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let ws = ws.url();
    let both = format!(
        "  - name: svc
    url: {ws}
    health:
      - {{ name: a, url: 'http://{svc}/health' }}
      - {{ name: b, url: 'http://{svc}/health', version_path: version }}
    remote_breakers: {{ url: 'http://{svc}/breakers', interval: 100ms, paths: {{ auth: circuit_breakers.auth.state }} }}
  - name: other
    url: {ws}
    health: [ {{ name: c, url: 'http://{svc}/health' }} ]
"
    );
    write_config(&path, &both);
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    until_metrics(addr, "everything ran", |m| {
        health_ok(m, "svc", "a") == Some(1.0)
            && health_ok(m, "svc", "b") == Some(1.0)
            && health_ok(m, "other", "c") == Some(1.0)
            && remote(m, "auth", "closed") == Some(1.0)
            && m.contains("wsprobe_deployment_info{")
            && sample(m, "wsprobe_circuit_state", &[("target", "other"), ("state", "closed")]) == Some(1.0)
    })
    .await;

    write_config(
        &path,
        &format!("  - name: svc\n    url: {ws}\n    health: [ {{ name: a, url: 'http://{svc}/health' }} ]\n"),
    );
    let resp = common::http::request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let m = until_metrics(addr, "the old series are gone", |m| {
        !m.contains("check=\"b\"")
            && !m.contains("target=\"other\"")
            && !m.contains("wsprobe_remote_circuit_state{")
    })
    .await;
    assert!(!m.contains("wsprobe_deployment_info{") && !m.contains("wsprobe_deployment_drift"), "{m}");
    assert_eq!(health_ok(&m, "svc", "a"), Some(1.0));
    let api =
        until_api(addr, "the API follows", |a| target(a, "svc")["health"].as_array().unwrap().len() == 1)
            .await;
    let t = target(&api, "svc");
    assert!(t["remote_breakers"].is_null() && t["deployment"].is_null(), "{t}");
    assert_eq!(api["targets"].as_array().unwrap().len(), 1);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

/// An HTTPS server answering every request with one JSON document.
async fn https_service(identity: &common::TlsIdentity) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let body = r#"{"version":"9.9.9"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_checks_time_tls_and_verify_the_certificate() {
    let identity = common::self_signed(&["localhost"]);
    let ca = common::write_temp(&identity.cert_pem);
    let addr = https_service(&identity).await;
    let yaml = format!(
        "targets:
  - name: t
    url: wss://localhost:{port}/ws
    tls: {{ ca_file: '{ca}', server_name: ws.example.test }}
    health:
      - {{ name: trusted, url: 'https://localhost:{port}/health', version_path: version }}
      - {{ name: untrusted, url: 'https://localhost:{port}/health', tls: {{ insecure_skip_verify: false }} }}
",
        port = addr.port(),
        ca = ca.path().display()
    );
    let config = wsprobe::config::parse(Path::new("t.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"));
    let checks = &config.targets[0].health;
    // The target's CA file is inherited, its server_name (the WebSocket host's) is not.
    assert_eq!(checks[0].tls.ca_file.as_deref(), Some(ca.path()));
    assert_eq!(checks[0].tls.server_name, None);

    let trusted = wsprobe::health::Checker::new(checks[0].clone()).unwrap().run("t").await;
    assert!(trusted.success, "{trusted:?}");
    assert_eq!(trusted.version.as_deref(), Some("9.9.9"));
    let phases: Vec<&str> = trusted.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(phases, ["dns", "connect", "tls", "first_byte", "total"]);

    // Its own `tls` block replaces the target's: no CA file, so the self-signed
    // certificate is not trusted.
    let untrusted = wsprobe::health::Checker::new(checks[1].clone()).unwrap().run("t").await;
    assert_eq!(untrusted.reason, Some(wsprobe::health::HealthReason::TlsError), "{untrusted:?}");
    assert!(untrusted.message.as_deref().unwrap().starts_with("TLS handshake failed: "), "{untrusted:?}");
}
