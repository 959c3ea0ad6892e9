//! A real Alertmanager (`prometheus-alertmanager`) on a loopback port, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::get;

/// A running Alertmanager that routes everything to a receiver with no integrations.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

impl Alertmanager {
    /// Starts it and waits (up to 15 s) until `/-/ready` answers 200.
    pub async fn start() -> Self {
        Self::start_with(
            "route: { receiver: blackhole, group_wait: 1s }\nreceivers: [ { name: blackhole } ]\n",
        )
        .await
    }

    /// [`start`](Self::start) with this configuration.
    pub async fn start_with(yaml: &str) -> Self {
        let binary = which("prometheus-alertmanager")
            .expect("prometheus-alertmanager is not installed: run scripts/install-deps.sh");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, yaml).expect("write config");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Self { child, addr, _dir: dir };
        let ready = super::poll::poll(Duration::from_secs(15), Duration::from_millis(100), || async {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok()
                && get(addr, "/-/ready").await.status == 200;
            if up {
                Ok(())
            } else {
                Err(())
            }
        });
        ready.await.unwrap_or_else(|()| panic!("Alertmanager not ready within 15s"));
        am
    }

    /// The alerts it holds, as its v2 API lists them.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&get(self.addr, "/api/v2/alerts").await.body).unwrap_or_default()
    }
}
