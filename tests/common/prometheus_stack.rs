//! A real Prometheus on a loopback port with the compose stack's configuration (scrape
//! job, rule files) pointed at the test's wsprobe instances, killed on drop; and the
//! real `wsprobe run` processes it scrapes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_norway::Value;

use super::process::{spawn, ChildGuard, Output};
pub use super::prometheus::Prometheus;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

/// Starts Prometheus with `deploy/compose/prometheus.yml` and the shipped rules laid out
/// as the compose stack mounts them (`rules/wsprobe.yml`), changed only where a test
/// must: the `wsprobe` job scrapes `targets` every second, rules are evaluated every
/// second, and no Alertmanager is configured. Waits until it is ready.
pub async fn start(targets: &[SocketAddr]) -> Prometheus {
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
    std::fs::copy(root().join("deploy/prometheus/alerts.yml"), dir.path().join("rules/wsprobe.yml")).unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, serde_norway::to_string(&config).unwrap()).unwrap();
    Prometheus::launch(dir, &file).await
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
