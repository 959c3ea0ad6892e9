//! Client certificates (`tls.cert_file`, `tls.key_file`) against a real rustls server
//! that demands one: every key kind and PEM form the `openssl` CLI writes, the missing
//! certificate reported as `tls_error` in `tls` (not a reset in `handshake`), rotation on
//! disk picked up by the next probe, and health checks through the same TLS client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::netpaths::{openssl, server_config, TlsFront};
use common::ServerOpts;
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober, Reason};

/// A client CA, the server's identity, and a plain echo server behind an mTLS front.
struct Rig {
    dir: tempfile::TempDir,
    server_cert: PathBuf,
    front: TlsFront,
    _echo: common::FakeServer,
}

impl Rig {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=wsprobe test client CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        std::fs::write(d.join("ext.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
            .unwrap();
        let server = common::self_signed(&["localhost"]);
        std::fs::write(d.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(d.join("server.key"), &server.key_pem).unwrap();
        let echo = common::echo(ServerOpts::default()).await;
        let config = server_config(&d.join("server.pem"), &d.join("server.key"), Some(&d.join("ca.pem")));
        let front = TlsFront::start(config, echo.addr).await;
        Self { server_cert: d.join("server.pem"), dir, front, _echo: echo }
    }

    /// Writes `{name}.key` with `keygen` (openssl arguments, `OUT` for the file) and a
    /// certificate for it issued by the client CA, `{name}.pem`.
    fn client(&self, name: &str, keygen: &[&str]) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let args: Vec<&str> = keygen.iter().map(|a| if *a == "OUT" { key.as_str() } else { a }).collect();
        openssl(d, &args);
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let subject = format!("/CN={name}");
        openssl(d, &["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr]);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
                "-out",
                &cert,
            ],
        );
        (d.join(cert), d.join(key))
    }

    fn prober(&self, pair: Option<(&Path, &Path)>) -> Prober {
        let mut tls = format!("    tls:\n      ca_file: {}\n", self.server_cert.display());
        if let Some((cert, key)) = pair {
            tls.push_str(&format!(
                "      cert_file: {}\n      key_file: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let yaml = format!("targets:\n  - name: t\n    url: {}\n{tls}", self.front.url());
        let config = common::config::parse(&yaml).expect("valid test config");
        Prober::new(config.targets[0].clone()).expect("prober")
    }
}

async fn probe(p: &Prober) -> ProbeResult {
    p.probe(&CancellationToken::new()).await.expect("not cancelled")
}

/// Which of `known` (name, certificate file) each presented certificate is.
fn names(presented: Vec<Option<Vec<u8>>>, known: &[(&str, &Path)]) -> Vec<String> {
    presented
        .into_iter()
        .map(|der| match der {
            None => "none".to_owned(),
            Some(der) => known
                .iter()
                .find(|(_, file)| der_of(file) == der)
                .map_or_else(|| "unknown".to_owned(), |(name, _)| (*name).to_owned()),
        })
        .collect()
}

fn der_of(pem_file: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(pem_file).unwrap().to_vec()
}

#[tokio::test]
async fn a_server_demanding_a_certificate_and_getting_none_is_a_tls_error() {
    let rig = Rig::start().await;
    let r = probe(&rig.prober(None)).await;
    assert!(!r.success, "{r:?}");
    assert_eq!((r.reason, r.phase), (Some(Reason::TlsError), Some(Phase::Tls)), "{:?}", r.message);
    let message = r.message.unwrap();
    assert!(message.contains("requires a client certificate"), "{message}");
    assert!(message.contains("certificate_required"), "{message}");
}

#[tokio::test]
async fn every_key_kind_and_pem_form_is_presented() {
    let rig = Rig::start().await;
    let kinds: [(&str, &[&str]); 5] = [
        ("rsa-pkcs1", &["genrsa", "-traditional", "-out", "OUT", "2048"]),
        ("rsa-pkcs8", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "OUT"]),
        ("ec-sec1", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "OUT"]),
        ("ec-pkcs8", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "OUT"]),
        ("ed25519", &["genpkey", "-algorithm", "ed25519", "-out", "OUT"]),
    ];
    for (name, keygen) in kinds {
        let (cert, key) = rig.client(name, keygen);
        let header = std::fs::read_to_string(&key).unwrap();
        let expected_header = match name {
            "rsa-pkcs1" => "-----BEGIN RSA PRIVATE KEY-----",
            "ec-sec1" => "-----BEGIN EC PRIVATE KEY-----",
            _ => "-----BEGIN PRIVATE KEY-----",
        };
        assert!(
            header.starts_with(expected_header),
            "{name}: openssl wrote {}",
            header.lines().next().unwrap()
        );
        let r = probe(&rig.prober(Some((&cert, &key)))).await;
        assert!(r.success, "{name}: {r:?}");
        let presented = rig.front.presented();
        assert_eq!(
            presented.last().cloned().flatten(),
            Some(der_of(&cert)),
            "{name}: the server saw another cert"
        );
    }
}

#[tokio::test]
async fn certificate_files_replaced_on_disk_are_used_by_the_next_probe() {
    let rig = Rig::start().await;
    let (cert_a, key_a) =
        rig.client("a", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "OUT"]);
    let (cert_b, key_b) = rig.client("b", &["genpkey", "-algorithm", "ed25519", "-out", "OUT"]);
    let live_cert = rig.dir.path().join("live.pem");
    let live_key = rig.dir.path().join("live.key");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let prober = rig.prober(Some((&live_cert, &live_key)));
    assert!(probe(&prober).await.success);

    // Rotated the way cert-manager and friends do it: new files renamed into place.
    let staged = rig.dir.path().join("staged");
    std::fs::copy(&cert_b, &staged).unwrap();
    std::fs::rename(&staged, &live_cert).unwrap();
    std::fs::copy(&key_b, &staged).unwrap();
    std::fs::rename(&staged, &live_key).unwrap();
    let r = probe(&prober).await;
    assert!(r.success, "{r:?}");

    assert_eq!(names(rig.front.presented(), &[("a", &cert_a), ("b", &cert_b)]), ["a", "b"]);
}

#[tokio::test]
async fn a_half_rotated_pair_keeps_the_last_good_one() {
    let rig = Rig::start().await;
    let (cert_a, key_a) =
        rig.client("a", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "OUT"]);
    let (cert_b, _key_b) =
        rig.client("b", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "OUT"]);
    let live_cert = rig.dir.path().join("live.pem");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    let prober = rig.prober(Some((&live_cert, &key_a)));
    assert!(probe(&prober).await.success);
    // The certificate is new, its key not yet: a mismatched pair is never presented.
    std::fs::copy(&cert_b, &live_cert).unwrap();
    let r = probe(&prober).await;
    assert!(r.success, "{r:?}");
    assert_eq!(names(rig.front.presented(), &[("a", &cert_a), ("b", &cert_b)]), ["a", "a"]);
}

#[tokio::test]
async fn health_checks_present_the_client_certificate_too() {
    let rig = Rig::start().await;
    let (cert, key) = rig.client("health", &["genpkey", "-algorithm", "ed25519", "-out", "OUT"]);
    // The health service behind its own mTLS front.
    let (service, _shared) = common::health::service().await;
    let d = rig.dir.path();
    let config = server_config(&d.join("server.pem"), &d.join("server.key"), Some(&d.join("ca.pem")));
    let front = TlsFront::start(config, service).await;
    let yaml = |pair: &str| {
        format!(
            "targets:\n  - name: t\n    url: {}\n    tls:\n      ca_file: {}\n{pair}    health:\n      - name: h\n        url: https://localhost:{}/health\n",
            rig.front.url(),
            rig.server_cert.display(),
            front.addr.port()
        )
    };
    let run = |yaml: String| async move {
        let config = common::config::parse(&yaml).expect("valid test config");
        let checker = wsprobe::health::Checker::new(config.targets[0].health[0].clone()).expect("checker");
        checker.run("t").await
    };
    let with = format!("      cert_file: {}\n      key_file: {}\n", cert.display(), key.display());
    let result = run(yaml(&with)).await;
    assert!(result.success, "{result:?}");
    assert_eq!(front.presented().last().cloned().flatten(), Some(der_of(&cert)));

    let result = run(yaml("")).await;
    assert!(!result.success, "{result:?}");
    let message = result.message.unwrap_or_default();
    assert!(message.contains("requires a client certificate"), "{message}");
}

#[test]
fn an_unusable_key_file_is_named_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    std::fs::copy("tests/fixtures/config/tls-client.pem", &cert).unwrap();
    let key = dir.path().join("client.key");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nKEYMATERIALxx!!notbase64\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let config = dir.path().join("wsprobe.yaml");
    let yaml = format!(
        "targets:\n  - name: t\n    url: wss://localhost:9/ws\n    tls: {{ cert_file: {}, key_file: {} }}\n",
        cert.display(),
        key.display()
    );
    std::fs::write(&config, yaml).unwrap();
    let out = common::config::run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = common::config::text(&out.stderr);
    assert!(stderr.contains("target `t`.tls.key_file: `"), "{stderr}");
    assert!(stderr.contains("holds no PEM private key"), "{stderr}");
    assert!(!stderr.contains("KEYMATERIAL"), "key material printed: {stderr}");
}
