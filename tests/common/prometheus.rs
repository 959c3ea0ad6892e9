//! A real Prometheus server on a loopback port, scraping given targets every second and
//! loading given rule files, killed on drop; and its query API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::get;

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

impl Prometheus {
    /// Starts it scraping `scrape` as job `job` (1 s scrape and evaluation interval) with
    /// `rule_files` loaded, and waits (up to 20 s) until `/-/ready` answers 200.
    pub async fn start(job: &str, scrape: SocketAddr, rule_files: &[PathBuf]) -> Self {
        let binary = which("prometheus").expect("prometheus is not installed: run scripts/install-deps.sh");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        let rules: Vec<String> = rule_files.iter().map(|p| format!("  - {}\n", p.display())).collect();
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\n\
                 rule_files:\n{}\
                 scrape_configs:\n  - job_name: {job}\n    static_configs: [ {{ targets: [\"{scrape}\"] }} ]\n",
                rules.concat()
            ),
        )
        .expect("write config");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Self { child, addr, _dir: dir };
        let ready = super::poll::poll(Duration::from_secs(20), Duration::from_millis(100), || async {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok()
                && get(addr, "/-/ready").await.status == 200;
            if up {
                Ok(())
            } else {
                Err(())
            }
        });
        ready.await.unwrap_or_else(|()| panic!("Prometheus not ready within 20s"));
        prometheus
    }

    /// `GET /api/v1/...` decoded; panics on an API error, with Prometheus' message.
    pub async fn api(&self, path_and_query: &str) -> serde_json::Value {
        let response = get(self.addr, &format!("/api/v1/{path_and_query}")).await;
        let v: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {e}: {}", response.body));
        assert_eq!(v["status"], "success", "{path_and_query}: {v}");
        v["data"].clone()
    }

    /// The series `query` returned at any step of 1 s between `start` and `end` (Unix
    /// seconds).
    pub async fn query_range(&self, query: &str, start: f64, end: f64) -> Vec<serde_json::Value> {
        let path = format!("query_range?query={}&start={start:.3}&end={end:.3}&step=1", encode(query));
        self.api(&path).await["result"].as_array().cloned().unwrap_or_default()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
