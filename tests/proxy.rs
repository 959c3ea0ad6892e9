//! Probes through HTTP CONNECT proxies: a real `tinyproxy` started by the test (ws:// and
//! wss:// through it, its log showing the CONNECT, Basic credentials from the proxy URL),
//! `proxy: env` with `HTTPS_PROXY`/`NO_PROXY` through the real binary, an `https://`
//! proxy, and hostile proxies that refuse (403, 502), trickle, lie or answer garbage.
//!
//! Tolerance: a trickling proxy is cut at `timeouts.proxy` (200 ms) within 150 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netpaths::{server_config, HostileProxy, ProxyAct, TlsFront};
use common::ServerOpts;
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober, Reason};

/// A `tinyproxy` on a free loopback port, logging to a file; killed (by its own PID) on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(basic_auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A free port: bound, read and released; tinyproxy takes it right after.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let log = dir.path().join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = basic_auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (scripts/install-deps.sh)");
        let proxy = Self { child, port, log, _dir: dir };
        let until = Instant::now() + Duration::from_secs(10);
        while !proxy.log().contains("Accepting connections") {
            assert!(Instant::now() < until, "tinyproxy did not start: {}", proxy.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wsprobe once --format json` on `yaml` with `env`; returns (exit code, the
/// report, stdout and stderr together).
fn once_all(yaml: &str, env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = common::config::wsprobe();
    for name in
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"]
    {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.args(["once", "--config", path.to_str().unwrap(), "--format", "json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    (out.status.code().unwrap_or(-1), json, all)
}

/// [`once_all`] with the first result only.
fn once(yaml: &str, env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let (code, json, all) = once_all(yaml, env);
    (code, json["results"][0].clone(), all)
}

fn ca_file(dir: &Path, pems: &[&str]) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pems.concat()).unwrap();
    path
}

async fn probe(yaml_target: &str) -> ProbeResult {
    let yaml = format!("targets:\n  - name: t\n{yaml_target}");
    let config = common::config::parse(&yaml).expect("valid test config");
    let prober = Prober::new(config.targets[0].clone()).expect("prober");
    prober.probe(&CancellationToken::new()).await.expect("not cancelled")
}

fn assert_proxy_error(r: &ProbeResult, phase: Phase, status: Option<u16>, contains: &str) {
    assert!(!r.success, "{r:?}");
    assert_eq!((r.reason, r.phase), (Some(Reason::ProxyError), Some(phase)), "{:?}", r.message);
    assert_eq!(r.http_status, status, "{:?}", r.message);
    let message = r.message.as_deref().unwrap_or_default();
    assert!(message.contains(contains), "{message}");
}

// The binary runs while the test's servers serve: they need a thread of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_and_wss_targets_go_through_a_real_tinyproxy() {
    let proxy = Tinyproxy::start(None);
    let plain = common::echo(ServerOpts::default()).await;
    let identity = common::self_signed(&["localhost"]);
    let secure = common::echo(ServerOpts { tls: Some(identity.clone()), ..ServerOpts::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path(), &[&identity.cert_pem]);
    let yaml = format!(
        "defaults:\n  proxy: {}\ntargets:\n  - name: plain\n    url: {}\n  - name: secure\n    url: {}\n    tls: {{ ca_file: {} }}\n",
        proxy.url(),
        plain.url(),
        secure.url(),
        ca.display()
    );
    let (code, json, all) = once_all(&yaml, &[]);
    assert_eq!(code, 0, "{all}");
    for result in json["results"].as_array().unwrap() {
        assert_eq!(result["success"], true, "{result}");
        assert!(result["phases"]["proxy"].as_f64().is_some(), "the CONNECT is timed: {result}");
    }
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", plain.addr.port())), "{log}");
    assert!(log.contains(&format!("CONNECT localhost:{} HTTP/1.1", secure.addr.port())), "{log}");
    assert_eq!((plain.connections(), secure.connections()), (1, 1));
}

// The binary runs while the test's servers serve: they need a thread of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_credentials_come_from_the_proxy_url_and_stay_secret() {
    let proxy = Tinyproxy::start(Some(("probe", "s3cret-proxy-pass")));
    let server = common::echo(ServerOpts::default()).await;
    let with = |userinfo: &str| {
        format!(
            "targets:\n  - name: t\n    url: {}\n    proxy: http://{userinfo}127.0.0.1:{}\n",
            server.url(),
            proxy.port
        )
    };
    let (code, r, all) = once(&with(""), &[]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(
        (r["reason"].as_str(), r["phase"].as_str(), r["http_status"].as_u64()),
        (Some("proxy_error"), Some("proxy"), Some(407)),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("requires authentication (HTTP 407 Proxy Authentication Required)"),
        "{r}"
    );

    let (code, r, all) = once(&with("probe:${PROXY_PASSWORD}@"), &[("PROXY_PASSWORD", "wrong-proxy-pass")]);
    assert_eq!(code, 1, "{all}");
    // tinyproxy answers wrong credentials with 401 (and missing ones with 407).
    assert_eq!(r["http_status"].as_u64(), Some(401), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("requires authentication (HTTP 401 Unauthorized); it refused the credentials"),
        "{r}"
    );
    assert!(!all.contains("wrong-proxy-pass"), "the password leaked: {all}");

    let (code, r, all) = once(&with("probe:${PROXY_PASSWORD}@"), &[("PROXY_PASSWORD", "s3cret-proxy-pass")]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(r["success"], true, "{r}");
    assert!(!all.contains("s3cret-proxy-pass"), "the password leaked: {all}");
}

// The binary runs while the test's servers serve: they need a thread of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_env_uses_https_proxy_unless_no_proxy_excludes_the_host() {
    let identity = common::self_signed(&["localhost"]);
    let server = common::echo(ServerOpts { tls: Some(identity.clone()), ..ServerOpts::default() }).await;
    let proxy = HostileProxy::start(ProxyAct::TunnelTo(server.addr)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path(), &[&identity.cert_pem]);
    let yaml = format!(
        "targets:\n  - name: t\n    url: {}\n    proxy: env\n    tls: {{ ca_file: {} }}\n",
        server.url(),
        ca.display()
    );
    let proxy_url = proxy.url();
    let (code, r, all) = once(&yaml, &[("HTTPS_PROXY", &proxy_url), ("HTTP_PROXY", "http://127.0.0.1:9")]);
    assert_eq!(code, 0, "{all}");
    assert!(r["phases"]["proxy"].as_f64().is_some(), "{r}");
    assert_eq!(proxy.heads().len(), 1);
    assert!(proxy.heads()[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", server.addr.port())));

    let (code, r, all) = once(&yaml, &[("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "example.test, localhost")]);
    assert_eq!(code, 0, "{all}");
    assert!(r["phases"].get("proxy").is_none(), "went direct: {r}");
    assert_eq!(proxy.heads().len(), 1, "the proxy was not asked again");
}

#[tokio::test]
async fn dns_resolves_the_proxy_and_never_the_target() {
    let server = common::echo(ServerOpts::default()).await;
    let proxy = HostileProxy::start(ProxyAct::TunnelTo(server.addr)).await;
    // `.invalid` never resolves (RFC 6761): only the proxy can reach it.
    let r = probe(&format!(
        "    url: ws://backend.invalid:8080/ws\n    proxy: http://localhost:{}\n",
        proxy.addr.port()
    ))
    .await;
    assert!(r.success, "{r:?}");
    assert!(r.phases.get(Phase::Dns).is_some() && r.phases.get(Phase::Proxy).is_some());
    assert!(proxy.heads()[0]
        .starts_with("CONNECT backend.invalid:8080 HTTP/1.1\r\nHost: backend.invalid:8080\r\n"));
}

#[tokio::test]
async fn an_https_proxy_is_reached_over_tls() {
    let identity = common::self_signed(&["localhost"]);
    let server = common::echo(ServerOpts { tls: Some(identity.clone()), ..ServerOpts::default() }).await;
    let inner = HostileProxy::start(ProxyAct::TunnelTo(server.addr)).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy_id = common::self_signed(&["localhost"]);
    std::fs::write(dir.path().join("proxy.pem"), &proxy_id.cert_pem).unwrap();
    std::fs::write(dir.path().join("proxy.key"), &proxy_id.key_pem).unwrap();
    let front = TlsFront::start(
        server_config(&dir.path().join("proxy.pem"), &dir.path().join("proxy.key"), None),
        inner.addr,
    )
    .await;
    let ca = ca_file(dir.path(), &[&identity.cert_pem, &proxy_id.cert_pem]);
    let target = |ca: &Path| {
        format!(
            "    url: {}\n    proxy: https://localhost:{}\n    tls: {{ ca_file: {} }}\n",
            server.url(),
            front.addr.port(),
            ca.display()
        )
    };
    let r = probe(&target(&ca)).await;
    assert!(r.success, "{r:?}");
    assert_eq!(front.presented().len(), 1, "one TLS session with the proxy");

    // The proxy's certificate is verified: without it in the bundle, the proxy fails.
    let only_server = dir.path().join("server-only.pem");
    std::fs::write(&only_server, &identity.cert_pem).unwrap();
    let r = probe(&target(&only_server)).await;
    assert_proxy_error(&r, Phase::Proxy, None, "TLS to the proxy localhost:");
}

#[tokio::test]
async fn refusals_are_proxy_errors_with_their_status() {
    let cases = [
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403, "refused the tunnel to 127.0.0.1:"),
        ("HTTP/1.1 502 Bad Gateway\r\n\r\n", 502, "with HTTP 502 Bad Gateway"),
        (
            "HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            407,
            "requires authentication",
        ),
    ];
    for (answer, status, contains) in cases {
        let proxy = HostileProxy::start(ProxyAct::Answer(answer)).await;
        let r = probe(&format!("    url: ws://127.0.0.1:9/ws\n    proxy: {}\n", proxy.url())).await;
        assert_proxy_error(&r, Phase::Proxy, Some(status), contains);
    }
}

#[tokio::test]
async fn a_trickling_proxy_is_cut_at_the_proxy_timeout() {
    let proxy = HostileProxy::start(ProxyAct::Trickle(
        "HTTP/1.1 200 Connection established\r\n\r\n",
        Duration::from_millis(20),
    ))
    .await;
    let r = probe(&format!(
        "    url: ws://127.0.0.1:9/ws\n    proxy: {}\n    timeouts: {{ proxy: 200ms }}\n",
        proxy.url()
    ))
    .await;
    let took = Duration::from_secs_f64(r.duration_seconds);
    assert_proxy_error(&r, Phase::Proxy, None, "did not complete the CONNECT exchange within 200ms");
    assert!((Duration::from_millis(200)..Duration::from_millis(350)).contains(&took), "took {took:?}");
    assert!(proxy.heads()[0].starts_with("CONNECT 127.0.0.1:9 HTTP/1.1"));
}

#[tokio::test]
async fn lying_proxies_are_proxy_errors() {
    // 200, then bytes the server cannot have sent (it has not been spoken to).
    let proxy = HostileProxy::start(ProxyAct::OkThenGarbage("<html>blocked</html>")).await;
    let r = probe(&format!("    url: ws://127.0.0.1:9/ws\n    proxy: {}\n", proxy.url())).await;
    assert_proxy_error(&r, Phase::Proxy, Some(200), "sent 20 bytes after its HTTP 200 answer");

    // 200, then a page instead of the server's TLS: found by the TLS handshake.
    let proxy = HostileProxy::start(ProxyAct::OkThenLateGarbage(Duration::from_millis(20))).await;
    let r = probe(&format!("    url: wss://localhost:9/ws\n    proxy: {}\n", proxy.url())).await;
    assert_proxy_error(&r, Phase::Tls, None, "does not carry TLS from the server");

    // Not HTTP at all.
    let proxy = HostileProxy::start(ProxyAct::Answer("SSH-2.0-OpenSSH_9.6\r\n\r\n")).await;
    let r = probe(&format!("    url: ws://127.0.0.1:9/ws\n    proxy: {}\n", proxy.url())).await;
    assert_proxy_error(&r, Phase::Proxy, None, "something that is not HTTP: `SSH-2.0-OpenSSH_9.6`");

    // A head without end is bounded.
    let endless: &'static str =
        Box::leak(format!("HTTP/1.1 200 OK\r\n{}", "X-Pad: y\r\n".repeat(3000)).into_boxed_str());
    let proxy = HostileProxy::start(ProxyAct::Answer(endless)).await;
    let r = probe(&format!("    url: ws://127.0.0.1:9/ws\n    proxy: {}\n", proxy.url())).await;
    assert_proxy_error(&r, Phase::Proxy, None, "a head larger than 16 KiB");
}

#[test]
fn configuration_errors_never_show_proxy_passwords() {
    let out = common::config::run(&[
        "check",
        "--config",
        "tests/fixtures/config/invalid-proxy-credentials-not-echoed.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = common::config::text(&out.stderr);
    assert!(stderr.contains("defaults.proxy: `http://***@proxy.corp.example:3128/path`"), "{stderr}");
    assert!(!stderr.contains("literal-proxy-password"), "{stderr}");
    assert!(!stderr.contains(common::config::SECRET), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exports_the_proxy_phase_and_its_failures() {
    let proxy = Tinyproxy::start(None);
    let server = common::echo(ServerOpts::default()).await;
    let refusing = HostileProxy::start(ProxyAct::Answer("HTTP/1.1 403 Forbidden\r\n\r\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let targets = format!(
        "  - name: via\n    url: {}\n    proxy: {}\n  - name: refused\n    url: {}\n    proxy: {}\n",
        server.url(),
        proxy.url(),
        server.url(),
        refusing.url()
    );
    common::daemon::write_config(&path, &targets);
    let (running, cancel) = common::daemon::start(&path).await;
    let proxied = r#"wsprobe_phase_duration_seconds_count{phase="proxy",target="via"}"#;
    let refused = r#"wsprobe_probe_failures_total{phase="proxy",reason="proxy_error",target="refused"}"#;
    let m = common::health::until_metrics(running.addr, "the proxy phase is exported", |m| {
        m.contains(proxied) && m.contains(refused)
    })
    .await;
    assert!(m.contains(r#"wsprobe_probe_success{target="via"} 1"#), "{m}");
    cancel.cancel();
}

#[tokio::test]
async fn proxy_none_goes_direct_although_defaults_name_a_proxy() {
    let server = common::echo(ServerOpts::default()).await;
    let refusing = HostileProxy::start(ProxyAct::Answer("HTTP/1.1 403 Forbidden\r\n\r\n")).await;
    let yaml = format!(
        "defaults:\n  proxy: {}\ntargets:\n  - name: inherits\n    url: {url}\n  - name: direct\n    url: {url}\n    proxy: none\n",
        refusing.url(),
        url = server.url()
    );
    let config = common::config::parse(&yaml).expect("valid test config");
    let run = |i: usize| {
        let prober = Prober::new(config.targets[i].clone()).expect("prober");
        async move { prober.probe(&CancellationToken::new()).await.expect("not cancelled") }
    };
    assert_proxy_error(&run(0).await, Phase::Proxy, Some(403), "refused the tunnel");
    let r = run(1).await;
    assert!(r.success && r.phases.get(Phase::Proxy).is_none(), "{r:?}");
    assert_eq!(refusing.heads().len(), 1);
}
