//! Trusting a server by its certificate or its key: a self-signed certificate made with
//! `openssl req -x509` (`CA:TRUE`) as `ca_file`, and `pin_sha256` on top of the chain
//! check or, with `insecure_skip_verify`, instead of it. Pins are computed by the openssl
//! CLI, independently of wsprobe. The certificate's expiry is reported in every case.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::netpaths::{openssl_pin, openssl_self_signed, server_config, TlsFront};
use common::ServerOpts;
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober, Reason};

/// A wss:// front presenting `cert`/`key`, before an echo server.
async fn front(cert: &Path, key: &Path) -> (TlsFront, common::FakeServer) {
    let echo = common::echo(ServerOpts::default()).await;
    (TlsFront::start(server_config(cert, key, None), echo.addr).await, echo)
}

async fn probe(url: &str, tls: &str) -> ProbeResult {
    let yaml = format!("targets:\n  - name: t\n    url: {url}\n    tls:\n{tls}");
    let config = common::config::parse(&yaml).expect("valid test config");
    let prober = Prober::new(config.targets[0].clone()).expect("prober");
    prober.probe(&CancellationToken::new()).await.expect("not cancelled")
}

/// `notAfter` of a PEM certificate, read by x509-parser.
fn not_after(cert: &Path) -> i64 {
    let pem = std::fs::read(cert).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().validity().not_after.timestamp()
}

fn assert_tls_error(r: &ProbeResult, contains: &str) {
    assert!(!r.success, "{r:?}");
    assert_eq!((r.reason, r.phase), (Some(Reason::TlsError), Some(Phase::Tls)), "{:?}", r.message);
    let message = r.message.as_deref().unwrap_or_default();
    assert!(message.contains(contains), "{message}");
}

#[tokio::test]
async fn an_openssl_self_signed_certificate_as_ca_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(dir.path(), "server");
    let text = common::netpaths::openssl(dir.path(), &["x509", "-in", "server.pem", "-noout", "-text"]);
    assert!(String::from_utf8_lossy(&text).contains("CA:TRUE"), "openssl req -x509 should mark CA:TRUE");
    let (front, _echo) = front(&cert, &key).await;
    let r = probe(&front.url(), &format!("      ca_file: {}\n", cert.display())).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.tls_cert_expiry, Some(not_after(&cert)));
}

#[tokio::test]
async fn the_exact_certificate_must_still_name_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(dir.path(), "server");
    let (front, _echo) = front(&cert, &key).await;
    let tls = format!("      ca_file: {}\n      server_name: other.test\n", cert.display());
    let r = probe(&front.url(), &tls).await;
    assert_tls_error(&r, "certificate");
    assert!(r.message.unwrap().contains("not valid for name"), "the name check still applies");
}

#[tokio::test]
async fn a_certificate_the_ca_file_does_not_hold_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(dir.path(), "server");
    let (other, _) = openssl_self_signed(dir.path(), "other");
    let (front, _echo) = front(&cert, &key).await;
    let r = probe(&front.url(), &format!("      ca_file: {}\n", other.display())).await;
    assert_tls_error(&r, "invalid peer certificate");
}

#[tokio::test]
async fn a_pin_on_top_of_the_chain_check_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(dir.path(), "server");
    let (other, _) = openssl_self_signed(dir.path(), "other");
    let (front, _echo) = front(&cert, &key).await;
    let right = openssl_pin(dir.path(), &cert);
    let wrong = openssl_pin(dir.path(), &other);

    let tls = |pin: &str| format!("      ca_file: {}\n      pin_sha256: [\"{pin}\"]\n", cert.display());
    let r = probe(&front.url(), &tls(&right)).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.tls_cert_expiry, Some(not_after(&cert)));

    let r = probe(&front.url(), &tls(&wrong)).await;
    assert_tls_error(&r, &format!("the server's key (pin_sha256 `{right}`) matches none of tls.pin_sha256"));

    // One matching pin among several (a backup key) is enough.
    let both = format!("      ca_file: {}\n      pin_sha256: [\"{wrong}\", \"{right}\"]\n", cert.display());
    assert!(probe(&front.url(), &both).await.success);
}

#[tokio::test]
async fn pins_alone_decide_with_insecure_skip_verify() {
    // rcgen's certificate, trusted by nothing and naming another host: only the key counts.
    let id = common::self_signed(&["elsewhere.test"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("id.pem"), dir.path().join("id.key"));
    std::fs::write(&cert, &id.cert_pem).unwrap();
    std::fs::write(&key, &id.key_pem).unwrap();
    let (front, _echo) = front(&cert, &key).await;
    let right = openssl_pin(dir.path(), &cert);
    let (other, _) = openssl_self_signed(dir.path(), "other");
    let wrong = openssl_pin(dir.path(), &other);

    let tls = |pin: &str| format!("      insecure_skip_verify: true\n      pin_sha256: [\"{pin}\"]\n");
    let r = probe(&front.url(), &tls(&right)).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.tls_cert_expiry, Some(not_after(&cert)));
    let r = probe(&front.url(), &tls(&wrong)).await;
    assert_tls_error(&r, "matches none of tls.pin_sha256");

    // Without insecure_skip_verify the chain check stands and refuses this certificate.
    let r = probe(&front.url(), &format!("      pin_sha256: [\"{right}\"]\n")).await;
    assert_tls_error(&r, "invalid peer certificate");
}
