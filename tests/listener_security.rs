//! The guarded listener, end to end through the real binary: TLS and basic auth from a
//! web configuration written the way exporters' documentation writes it, through a real
//! TLS client (tokio-rustls); plain HTTP sent to the TLS port; client certificates; a
//! cross-site reload and DNS rebinding refused; the lifecycle switch; reloading the web
//! configuration; and a real Prometheus scraping through `scheme: https` and
//! `basic_auth`. Invalid web configurations: golden messages in
//! `tests/fixtures/web/invalid-*.yml` (bless with `WSPROBE_BLESS=1`), nothing secret in
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;
#[path = "listener_security/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::http::sample;
use common::prometheus::Prometheus;
use support::{basic, exchange, get, request, start, Ca, Pair};

/// A cost bcrypt accepts that keeps the tests fast; the Prometheus test uses 10, as the
/// exporter documentation's `htpasswd -nBC 10`.
const FAST_COST: u32 = 4;

/// Writes `server.crt`/`server.key` beside `web.yml` and the web configuration itself,
/// with relative paths as in the exporter documentation's sample.
fn write_web(dir: &Path, server: &Pair, body: &str) -> PathBuf {
    std::fs::write(dir.join("server.crt"), &server.cert).unwrap();
    std::fs::write(dir.join("server.key"), &server.key).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(&path, body).unwrap();
    path
}

fn tls_with_users(users: &[(&str, &str)], cost: u32) -> String {
    let mut yaml = "# TLS and basic authentication, as for an exporter.\ntls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n".to_owned();
    for (user, password) in users {
        yaml.push_str(&format!("  {user}: {}\n", bcrypt::hash(password, cost).unwrap()));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_over_tls_refuses_missing_and_wrong_passwords_and_admits_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let web = write_web(
        dir.path(),
        &ca.issue(&["127.0.0.1"]),
        &tls_with_users(&[("alice", "wonderland")], FAST_COST),
    );
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);
    let tls = Some(ca.client(None));

    let none = exchange(d.addr, tls.clone(), &get(d.addr, "/metrics", &[])).await.unwrap();
    assert_eq!(none.status, 401, "{none:?}");
    let challenge = none.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Basic realm=\"wsprobe\""), "{challenge}");

    let wrong =
        exchange(d.addr, tls.clone(), &get(d.addr, "/metrics", &[&basic("alice", "looking-glass")])).await;
    assert_eq!(wrong.unwrap().status, 401);
    let unknown =
        exchange(d.addr, tls.clone(), &get(d.addr, "/api/targets", &[&basic("bob", "wonderland")])).await;
    assert_eq!(unknown.unwrap().status, 401);

    let right = exchange(d.addr, tls.clone(), &get(d.addr, "/metrics", &[&basic("alice", "wonderland")]))
        .await
        .unwrap();
    assert_eq!(right.status, 200, "{right:?}");
    assert!(right.body.contains("wsprobe_build_info"), "{}", right.body);
    // Every other route is guarded too, and /healthz is open for liveness probes.
    for path in ["/", "/api/targets", "/api/alerts", "/readyz", "/no-such-page"] {
        let r = exchange(d.addr, tls.clone(), &get(d.addr, path, &[])).await.unwrap();
        assert_eq!(r.status, 401, "{path}");
    }
    let health = exchange(d.addr, tls.clone(), &get(d.addr, "/healthz", &[])).await.unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let metrics = right.body;
    let refused = sample(&metrics, "wsprobe_http_requests_refused_total", &[("reason", "unauthorized")]);
    assert_eq!(refused, Some(3.0), "the three refusals before this scrape are counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_the_tls_listener_is_told_to_use_https_and_the_daemon_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let web = write_web(
        dir.path(),
        &ca.issue(&["127.0.0.1"]),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);

    let plain = exchange(d.addr, None, &get(d.addr, "/metrics", &[])).await.unwrap();
    assert_eq!(plain.status, 400);
    assert!(plain.body.contains("https://"), "{plain:?}");
    // A client that does not trust the certificate fails its handshake; the daemon goes on.
    let untrusting = Ca::new("another CA").client(None);
    let err = exchange(d.addr, Some(untrusting), &get(d.addr, "/metrics", &[])).await.unwrap_err();
    assert!(err.contains("TLS handshake"), "{err}");

    let ok = exchange(d.addr, Some(ca.client(None)), &get(d.addr, "/metrics", &[])).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        sample(&ok.body, "wsprobe_http_connections_closed_total", &[("reason", "plain_http")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&ok.body, "wsprobe_http_connections_closed_total", &[("reason", "tls_error")]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_certificates_refuse_clients_without_one_or_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    std::fs::write(dir.path().join("clients.pem"), &clients.pem).unwrap();
    let web = write_web(
        dir.path(),
        &ca.issue(&["127.0.0.1"]),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: clients.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);
    let trusted = |id: Option<&Pair>| {
        // The client trusts the server's CA and presents `id`.
        let mut config = (*ca.client(None)).clone();
        if let Some(id) = id {
            config = (*ca.client(Some(id))).clone();
        }
        Some(std::sync::Arc::new(config))
    };

    let without = exchange(d.addr, trusted(None), &get(d.addr, "/metrics", &[])).await;
    assert!(without.is_err(), "no certificate, no answer: {without:?}");
    let stranger = Ca::new("stranger CA").issue(&["client.test"]);
    let foreign = exchange(d.addr, trusted(Some(&stranger)), &get(d.addr, "/metrics", &[])).await;
    assert!(foreign.is_err(), "a certificate from another CA, no answer: {foreign:?}");

    let member = clients.issue(&["client.test"]);
    let ok = exchange(d.addr, trusted(Some(&member)), &get(d.addr, "/metrics", &[])).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        sample(&ok.body, "wsprobe_http_connections_closed_total", &[("reason", "tls_error")]),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_reloads_are_refused_and_same_origin_ones_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &[]);
    let addr = d.addr;
    let origin = format!("Origin: http://{addr}");
    let cases: [(&str, Vec<String>); 5] = [
        (
            "another origin",
            vec!["Origin: http://evil.example".into(), "Content-Type: application/json".into()],
        ),
        ("a form post", vec!["Content-Type: application/x-www-form-urlencoded".into()]),
        ("a multipart form", vec!["Content-Type: multipart/form-data; boundary=x".into()]),
        ("a text/plain form", vec![origin.clone(), "Content-Type: text/plain;charset=UTF-8".into()]),
        ("a browser's cross-site fetch", vec!["Sec-Fetch-Site: cross-site".into()]),
    ];
    for (what, headers) in &cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = exchange(addr, None, &request("POST", addr, "/-/reload", &headers)).await.unwrap();
        assert_eq!(r.status, 403, "{what}: {r:?}");
    }
    let same =
        exchange(addr, None, &request("POST", addr, "/-/reload", &[&origin, "Sec-Fetch-Site: same-origin"]))
            .await;
    assert_eq!(same.unwrap().status, 200);
    let curl = exchange(addr, None, &request("POST", addr, "/-/reload", &[])).await.unwrap();
    assert_eq!(curl.status, 200, "{curl:?}");
    let metrics = exchange(addr, None, &get(addr, "/metrics", &[])).await.unwrap().body;
    assert_eq!(
        sample(&metrics, "wsprobe_http_requests_refused_total", &[("reason", "cross_site")]),
        Some(5.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_listener_refuses_rebound_host_names_and_admits_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &["--web.allowed-hosts", "wsprobe.test,monitor.internal"]);
    let port = d.addr.port();
    let with_host =
        |host: String| format!("GET /api/targets HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    for host in [format!("attacker.example:{port}"), format!("localhost.attacker.example:{port}")] {
        let r = exchange(d.addr, None, &with_host(host.clone())).await.unwrap();
        assert_eq!(r.status, 403, "{host}: {r:?}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("wsprobe.test:{port}"),
        "MONITOR.internal".to_owned(),
    ] {
        let r = exchange(d.addr, None, &with_host(host.clone())).await.unwrap();
        assert_eq!(r.status, 200, "{host}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_lifecycle_off_reload_is_refused_and_sighup_still_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &["--web.enable-lifecycle=false"]);
    let r = exchange(d.addr, None, &request("POST", d.addr, "/-/reload", &[])).await.unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.contains("--web.enable-lifecycle=false"), "{r:?}");
    d.child.signal("HUP");
    d.wait_log("Configuration reloaded.");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_rereads_the_web_configuration_and_keeps_it_when_the_new_one_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let web =
        write_web(dir.path(), &ca.issue(&["127.0.0.1"]), &tls_with_users(&[("alice", "first")], FAST_COST));
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);
    let tls = Some(ca.client(None));
    let status = |user: &'static str, password: &'static str, path: &'static str, method: &'static str| {
        let tls = tls.clone();
        async move {
            exchange(d.addr, tls, &request(method, d.addr, path, &[&basic(user, password)])).await.unwrap()
        }
    };
    assert_eq!(status("alice", "first", "/metrics", "GET").await.status, 200);

    std::fs::write(&web, tls_with_users(&[("alice", "second")], FAST_COST)).unwrap();
    let reload = status("alice", "first", "/-/reload", "POST").await;
    assert_eq!(reload.status, 200, "{reload:?}");
    assert_eq!(status("alice", "first", "/metrics", "GET").await.status, 401, "the old password is gone");
    assert_eq!(status("alice", "second", "/metrics", "GET").await.status, 200);

    std::fs::write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n").unwrap();
    let rejected = status("alice", "second", "/-/reload", "POST").await;
    assert_eq!(rejected.status, 400, "{rejected:?}");
    assert!(
        rejected.body.contains("web.yml: tls_server_config.client_auth_type: `Sometimes` is not one of"),
        "{}",
        rejected.body
    );
    assert_eq!(status("alice", "second", "/metrics", "GET").await.status, 200, "the old configuration stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_from_http_server_config_are_on_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Content-Security-Policy: \"default-src 'none'\"\n",
    )
    .unwrap();
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);
    for path in ["/metrics", "/healthz", "/missing"] {
        let r = exchange(d.addr, None, &get(d.addr, path, &[])).await.unwrap();
        assert_eq!(r.header("x-frame-options").as_deref(), Some("deny"), "{path}");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(r.header("content-security-policy").as_deref(), Some("default-src 'none'"), "{path}");
    }
}

#[test]
fn run_with_an_invalid_web_configuration_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: $2y$10$not-really-a-hash-but-secret-looking\n")
        .unwrap();
    let config = dir.path().join("wsprobe.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\ntargets:\n  - name: a\n    url: ws://127.0.0.1:1/\n")
        .unwrap();
    let out = common::config::run(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--web.config.file",
        web.to_str().unwrap(),
    ]);
    let stderr = common::config::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}: basic_auth_users.alice: not a bcrypt hash", web.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("not-really"), "the hash is not echoed: {stderr}");
}

// ---------------------------------------------------------------------------------------
// Golden messages for invalid web configurations

const FIXTURES: &str = "tests/fixtures/web";

#[test]
fn invalid_web_configurations_have_exact_messages_and_print_nothing_secret() {
    let bless = std::env::var_os("WSPROBE_BLESS").is_some_and(|v| v == "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join(FIXTURES))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("invalid-") && n.ends_with(".yml"))
        })
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "expected the fixture catalogue, found {}", fixtures.len());
    let config = format!("{FIXTURES}/wsprobe.yaml");
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let name = fixture.file_name().unwrap().to_str().unwrap();
        let shown = format!("{FIXTURES}/{name}");
        let out = common::config::run(&["check", "--config", &config, "--web.config.file", &shown]);
        let stderr = common::config::text(&out.stderr);
        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, expected 2\n{stderr}", out.status.code()));
            continue;
        }
        for secret in ["$2y$", "$2b$", "PRIVATE KEY", "MIIE", "SECRET-MATERIAL"] {
            if stderr.contains(secret) {
                failures.push(format!("{name}: `{secret}` leaked into stderr:\n{stderr}"));
            }
        }
        let expected_file = fixture.with_extension("err");
        let as_template = stderr.replace(&shown, "{file}");
        if bless {
            std::fs::write(&expected_file, &as_template).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if expected != as_template {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{as_template}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_documented_sample_web_configuration_is_valid() {
    let out = common::config::run(&[
        "check",
        "--config",
        &format!("{FIXTURES}/wsprobe.yaml"),
        "--web.config.file",
        &format!("{FIXTURES}/valid-exporter-sample.yml"),
    ]);
    let stdout = common::config::text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}{stdout}", common::config::text(&out.stderr));
    assert!(stdout.contains("valid-exporter-sample.yml: valid; TLS on, basic auth on"), "{stdout}");
}

/// Prometheus itself (Debian's `prometheus` on PATH) scrapes the daemon with `scheme:
/// https`, `basic_auth` and `tls_config.ca_file`; its own `up` for the job must be 1.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_through_tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    let web =
        write_web(dir.path(), &ca.issue(&["127.0.0.1"]), &tls_with_users(&[("prometheus", "scrape-me")], 10));
    let d = start(dir.path(), "127.0.0.1:0", &["--web.config.file", web.to_str().unwrap()]);
    // Credentials are in force: without them, the same scrape is refused.
    let anonymous = exchange(d.addr, Some(ca.client(None)), &get(d.addr, "/metrics", &[])).await.unwrap();
    assert_eq!(anonymous.status, 401);

    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: wsprobe\n    scheme: https\n    basic_auth:\n      username: prometheus\n      password: scrape-me\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      - targets: ['{addr}']\n",
            ca = dir.path().join("ca.pem").display(),
            addr = d.addr
        ),
    )
    .unwrap();
    let prometheus = Prometheus::launch(tempfile::tempdir().unwrap(), &prom_config).await;
    prometheus
        .until("up{job=\"wsprobe\"}", Duration::from_secs(30), |r| r.first().is_some_and(|(_, v)| *v == 1.0))
        .await;
    let scraped = prometheus.query("wsprobe_build_info").await;
    assert!(
        scraped.iter().any(|(labels, _)| labels["job"] == "wsprobe"),
        "the daemon's own series arrived: {scraped:?}"
    );
}
