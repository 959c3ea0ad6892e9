//! A real Prometheus on a loopback port with the compose stack's configuration (scrape
//! job, rule files) pointed at the test's wsprobe instances, killed on drop; and the
//! real `wsprobe run` processes it scrapes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_norway::Value;

use super::http::get;
use super::process::{spawn, ChildGuard, Output};

/// A running Prometheus.
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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

impl Prometheus {
    /// Starts Prometheus with `deploy/compose/prometheus.yml` and the shipped rules laid
    /// out as the compose stack mounts them (`rules/wsprobe.yml`), changed only where a
    /// test must: the `wsprobe` job scrapes `targets` every second, rules are evaluated
    /// every second, and no Alertmanager is configured. Waits until it is ready.
    pub async fn start(targets: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config: Value = serde_norway::from_str(
            &std::fs::read_to_string(root().join("deploy/compose/prometheus.yml")).unwrap(),
        )
        .expect("compose prometheus.yml");
        config["global"]["scrape_interval"] = "1s".into();
        config["global"]["evaluation_interval"] = "1s".into();
        config.as_mapping_mut().unwrap().remove("alerting");
        let job = &mut config["scrape_configs"][0];
        assert_eq!(job["job_name"], "wsprobe");
        job["scrape_interval"] = "1s".into();
        job["scrape_timeout"] = "1s".into();
        let list: Vec<Value> = targets.iter().map(|t| Value::from(t.to_string())).collect();
        job["static_configs"][0]["targets"] = Value::Sequence(list);
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::copy(root().join("deploy/prometheus/alerts.yml"), dir.path().join("rules/wsprobe.yml"))
            .unwrap();
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, serde_norway::to_string(&config).unwrap()).unwrap();

        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}); run scripts/install-deps.sh"));
        let p = Self { child, addr, _dir: dir };
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
        p
    }

    /// An instant query's result vector: `(labels, value)` per series.
    pub async fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = get(self.addr, &format!("/api/v1/query?query={encoded}")).await.body;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(json["status"], "success", "{promql}: {body}");
        json["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s["metric"].as_object().unwrap().clone();
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` until `done` accepts its result; fails the test after `within`.
    pub async fn until(
        &self,
        promql: &str,
        within: Duration,
        done: impl Fn(&[(serde_json::Map<String, serde_json::Value>, f64)]) -> bool,
    ) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
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
}

/// A `wsprobe run` process and the address it serves /metrics on.
#[derive(Debug)]
pub struct Instance {
    pub addr: SocketAddr,
    _child: ChildGuard,
}

/// Writes `yaml` to `dir/name.yaml` and runs `wsprobe run` on it with `args`; returns once
/// it serves (its `Serving /metrics and the API.` log line gives the address).
pub fn run_wsprobe(dir: &Path, name: &str, yaml: &str, args: &[&str]) -> Instance {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    let config = path.to_str().unwrap().to_owned();
    let mut all = vec!["run", "--config", &config];
    all.extend(args);
    let (child, lines) = spawn(&all, &[("RUST_LOG", "info")], Output::Stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{name}: wsprobe did not start serving within 10s"));
        if line.contains("Serving /metrics and the API.") {
            let addr = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || while lines.recv().is_ok() {});
            return Instance { addr: addr.parse().unwrap(), _child: child };
        }
    }
}

/// A loopback port nothing listens on: connections to it are refused.
pub fn closed_port() -> u16 {
    free_port()
}
