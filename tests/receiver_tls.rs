//! Alert receivers behind a private CA: a receiver's `tls` settings are honoured by the
//! delivery client (the same HTTP client the health checks use), over real TLS on a
//! loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wsprobe::alerting::dispatch::Receiver;
use wsprobe::alerting::http::{post_json, PostError};

/// An HTTPS receiver presenting a certificate only `identity` vouches for; records the
/// bodies it is sent and answers 200.
async fn https_receiver(identity: &common::TlsIdentity) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(identity.server_config());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                // Head, then as many bytes as Content-Length says.
                let body = loop {
                    let Ok(n) = tls.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&got).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_owned();
                        }
                    }
                };
                seen.lock().expect("lock").push(body);
                let _ =
                    tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, bodies)
}

fn receiver(yaml_tls: &str, addr: std::net::SocketAddr) -> Receiver {
    let yaml = format!(
        "targets:\n  - name: t\n    url: ws://127.0.0.1:1/ws\nalerting:\n  webhooks:\n    - url: https://127.0.0.1:{}/hook\n{yaml_tls}",
        addr.port()
    );
    let config = wsprobe::config::parse(Path::new("test.yaml"), &yaml).expect("valid config");
    config.alerting.expect("alerting configured").receivers.remove(0)
}

#[tokio::test]
async fn a_receiver_behind_a_private_ca_is_reached_with_its_ca_file() {
    let identity = common::self_signed(&["127.0.0.1"]);
    let ca = common::write_temp(&identity.cert_pem);
    let (addr, bodies) = https_receiver(&identity).await;
    let tls = format!("      tls: {{ ca_file: {} }}\n", ca.path().display());
    let r = receiver(&tls, addr);
    let status = post_json(&r.url, &r.headers, br#"{"alerts":[]}"#, Duration::from_secs(5), &r.tls).await;
    assert_eq!(status, Ok(200));
    assert_eq!(*bodies.lock().expect("lock"), vec![r#"{"alerts":[]}"#.to_owned()]);
}

#[tokio::test]
async fn without_tls_settings_the_private_ca_is_not_trusted() {
    let identity = common::self_signed(&["127.0.0.1"]);
    let (addr, bodies) = https_receiver(&identity).await;
    let r = receiver("", addr);
    let out = post_json(&r.url, &r.headers, b"{}", Duration::from_secs(5), &r.tls).await;
    match out {
        Err(PostError::Connect(message)) => {
            assert!(message.starts_with("TLS handshake failed: "), "{message}");
            assert!(message.contains("certificate"), "{message}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert!(bodies.lock().expect("lock").is_empty(), "nothing may be delivered over an untrusted connection");
}

#[tokio::test]
async fn server_name_names_what_the_certificate_is_checked_against() {
    // The certificate is for `receiver.test`, reached at 127.0.0.1.
    let identity = common::self_signed(&["receiver.test"]);
    let ca = common::write_temp(&identity.cert_pem);
    let (addr, _) = https_receiver(&identity).await;
    let plain = receiver(&format!("      tls: {{ ca_file: {} }}\n", ca.path().display()), addr);
    let out = post_json(&plain.url, &plain.headers, b"{}", Duration::from_secs(5), &plain.tls).await;
    assert!(matches!(&out, Err(PostError::Connect(m)) if m.starts_with("TLS handshake failed")), "{out:?}");
    let named = receiver(
        &format!("      tls: {{ ca_file: {}, server_name: receiver.test }}\n", ca.path().display()),
        addr,
    );
    let out = post_json(&named.url, &named.headers, b"{}", Duration::from_secs(5), &named.tls).await;
    assert_eq!(out, Ok(200));
}
