//! A real Prometheus server on a loopback port it picks itself, killed on drop; and its
//! query API. `start` writes a minimal configuration (one job, given rule files);
//! `launch` runs any configuration file (the compose stack's, one scraping over TLS).

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::get;

/// An instant query's result: `(labels, value)` per series.
pub type Vector = Vec<(serde_json::Map<String, serde_json::Value>, f64)>;

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
    /// `rule_files` loaded, and waits until it is ready.
    pub async fn start(job: &str, scrape: SocketAddr, rule_files: &[PathBuf]) -> Self {
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
        Self::launch(dir, &config).await
    }

    /// Runs Prometheus on `config` from inside `dir` (relative rule paths resolve there;
    /// its data goes there; removed on drop), on a port it binds itself and logs, and
    /// waits (up to 20 s) until `/-/ready` answers 200.
    pub async fn launch(dir: tempfile::TempDir, config: &Path) -> Self {
        let binary = which("prometheus").expect("prometheus is not installed: run scripts/install-deps.sh");
        let mut child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prometheus");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining the log, so Prometheus never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr: SocketAddr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("Prometheus said where it listens within 20s");
            if line.contains("msg=\"Listening on\"") {
                let address =
                    line.split_whitespace().find_map(|f| f.strip_prefix("address=")).expect("address");
                break address.parse().expect("a socket address");
            }
        };
        let prometheus = Self { child, addr, _dir: dir };
        let ready = super::poll::poll(Duration::from_secs(20), Duration::from_millis(100), || async {
            if get(addr, "/-/ready").await.status == 200 {
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

    /// An instant query's result vector.
    pub async fn query(&self, promql: &str) -> Vector {
        let data = self.api(&format!("query?query={}", encode(promql))).await;
        data["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let labels = s["metric"].as_object().expect("labels").clone();
                let value = s["value"][1].as_str().expect("a value").parse().expect("a number");
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` until `done` accepts its result; fails the test after `within`.
    pub async fn until(&self, promql: &str, within: Duration, done: impl Fn(&Vector) -> bool) -> Vector {
        let deadline = Instant::now() + within;
        loop {
            let result = self.query(promql).await;
            if done(&result) {
                return result;
            }
            assert!(Instant::now() < deadline, "{promql}: not as expected within {within:?}: {result:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
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
