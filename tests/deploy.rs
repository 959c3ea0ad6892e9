//! The deployment files, each checked by the tool that will read it: hadolint for the
//! Dockerfile, buildah for the image layout, promtool and amtool for the compose stack's
//! configurations as the containers see them, kustomize and the Kubernetes schemas for the
//! manifests, systemd-analyze for the unit. A check that needs a tool uses it: a missing
//! tool fails the test (scripts/install-deps.sh installs them all).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Runs a tool; a tool that is not installed fails the test with how to get it.
fn tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}); run `bash scripts/install-deps.sh`"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn assert_ok(out: &Output, what: &str) -> String {
    let all = text(out);
    assert!(out.status.success(), "{what} failed ({}):\n{all}", out.status);
    all
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

// ---------------------------------------------------------------------------------------
// Container image.

#[test]
fn hadolint_accepts_the_dockerfile() {
    let out = tool("hadolint", &["Dockerfile"], &root());
    assert_ok(&out, "hadolint Dockerfile");
}

#[test]
fn the_final_stage_runs_the_binary_as_nonroot_without_a_shell() {
    let dockerfile = read("Dockerfile");
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(last.starts_with("gcr.io/distroless/cc-debian12:nonroot"), "final stage: {last}");
    assert!(last.contains("\nUSER 65532:65532\n"));
    assert!(last.contains(r#"ENTRYPOINT ["/usr/local/bin/wsprobe"]"#), "exec form, no shell");
    assert!(last.contains(r#"VOLUME ["/etc/wsprobe", "/var/lib/wsprobe"]"#));
    assert!(!last.contains("RUN "), "the final stage runs nothing (it has no shell)");
    let ignore = read(".dockerignore");
    for excluded in ["target/", ".git/"] {
        assert!(ignore.lines().any(|l| l == excluded), ".dockerignore must exclude {excluded}");
    }
}

/// buildah's view of the image's storage, in a directory of the test's own.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn run(&self, args: &[&str]) -> Output {
        let storage = self.dir.path().join("root");
        let runroot = self.dir.path().join("run");
        let mut all = vec!["--storage-driver", "vfs", "--root", storage.to_str().unwrap()];
        all.extend(["--runroot", runroot.to_str().unwrap()]);
        all.extend(args);
        tool("buildah", &all, &root())
    }

    fn ok(&self, args: &[&str]) -> String {
        assert_ok(&self.run(args), &format!("buildah {}", args.join(" ")))
    }
}

#[test]
fn the_offline_image_has_the_layout_user_and_entrypoint_and_runs() {
    let buildah = Buildah { dir: tempfile::tempdir().unwrap() };
    // The test's own binary, stripped (the layout is what is proved, not optimisation);
    // the script packages target/release/wsprobe by default.
    let bin = buildah.dir.path().join("wsprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_wsprobe"), &bin).unwrap();
    assert_ok(&tool("strip", &[bin.to_str().unwrap()], &root()), "strip");
    let image = "localhost/wsprobe:deploy-test";
    let out = Command::new("bash")
        .arg("scripts/build-image.sh")
        .current_dir(root())
        .env("WSPROBE_BIN", &bin)
        .env("WSPROBE_IMAGE", image)
        .env("WSPROBE_BUILDAH_ROOT", buildah.dir.path())
        .output()
        .expect("run scripts/build-image.sh");
    assert_ok(&out, "scripts/build-image.sh");

    let inspect: serde_json::Value =
        serde_json::from_str(&buildah.ok(&["inspect", "--type", "image", image])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/wsprobe"]));
    assert_eq!(config["Cmd"], serde_json::json!(["run", "--config", "/etc/wsprobe/wsprobe.yaml"]));
    assert_eq!(config["Volumes"], serde_json::json!({"/etc/wsprobe": {}, "/var/lib/wsprobe": {}}));
    assert_eq!(config["ExposedPorts"], serde_json::json!({"9478/tcp": {}}));

    let ctr = buildah.ok(&["from", "--pull-never", image]).trim().to_owned();
    let mnt = PathBuf::from(buildah.ok(&["mount", &ctr]).trim());
    let meta = |p: &str| std::fs::metadata(mnt.join(p)).unwrap_or_else(|e| panic!("/{p} in the image: {e}"));
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta("usr/local/bin/wsprobe").mode() & 0o111, 0o111, "the binary is executable");
    assert!(meta("etc/ssl/certs/ca-certificates.crt").len() > 0, "trust roots for wss://");
    assert_eq!((meta("var/lib/wsprobe").uid(), meta("var/lib/wsprobe").gid()), (65532, 65532));
    let passwd = std::fs::read_to_string(mnt.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh"] {
        assert!(!mnt.join(shell).exists(), "/{shell} in the image");
    }
    buildah.ok(&["umount", &ctr]);

    // Run from the image as its user: --version, then `check` on a mounted configuration.
    let version =
        buildah.ok(&["run", "--isolation", "chroot", &ctr, "--", "/usr/local/bin/wsprobe", "--version"]);
    assert!(version.starts_with("wsprobe 0.1.0"), "{version}");
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("wsprobe.yaml"),
        "listen: 0.0.0.0:9478\ntargets:\n  - { name: agent, url: \"ws://127.0.0.1:1/ws\" }\n",
    )
    .unwrap();
    let volume = format!("{}:/etc/wsprobe:ro", conf.path().display());
    let check = ["run", "--isolation", "chroot", "-v", &volume, &ctr, "--"];
    let cmd = ["/usr/local/bin/wsprobe", "check", "--config", "/etc/wsprobe/wsprobe.yaml"];
    let args: Vec<&str> = check.iter().chain(&cmd).copied().collect();
    let out = buildah.ok(&args);
    assert!(out.contains("valid; listen 0.0.0.0:9478; 1 target(s)"), "{out}");
    // Not root: a directory only root may enter is unreadable from the image.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(conf.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let denied = buildah.run(&args);
    assert!(!denied.status.success() && text(&denied).contains("Permission denied"), "{}", text(&denied));
    buildah.ok(&["rm", &ctr]);
    buildah.ok(&["rmi", "--force", image]);
}

// ---------------------------------------------------------------------------------------
// Compose stack.

const COMPOSE_DIR: &str = "deploy/compose";

/// `(host source, container path)` of every bind mount of a compose service.
fn binds(compose: &Value, service: &str) -> Vec<(PathBuf, String)> {
    let volumes = compose["services"][service]["volumes"].as_sequence().cloned().unwrap_or_default();
    volumes
        .iter()
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with('.') || v.starts_with('/'))
        .map(|v| {
            let mut parts = v.split(':');
            let source = root().join(COMPOSE_DIR).join(parts.next().unwrap());
            (source, parts.next().expect("a container path").to_owned())
        })
        .collect()
}

/// A directory holding a service's bind mounts at their container paths: the files as
/// the container sees them, for the tools to check.
fn as_container_sees_it(compose: &Value, service: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (source, target) in binds(compose, service) {
        let to = dir.path().join(target.trim_start_matches('/'));
        copy_tree(&source, &to);
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

fn compose() -> Value {
    yaml(&format!("{COMPOSE_DIR}/compose.yaml"))
}

#[test]
fn compose_file_parses_and_every_mount_and_build_context_exists() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, ["wsprobe", "prometheus", "alertmanager", "grafana"]);
    let declared = compose["volumes"].as_mapping().expect("named volumes");
    let mut mounts = 0;
    for name in &names {
        for volume in compose["services"][*name]["volumes"].as_sequence().unwrap() {
            let spec = volume.as_str().unwrap();
            if spec.starts_with('.') || spec.starts_with('/') {
                continue;
            }
            let named = spec.split(':').next().unwrap();
            assert!(declared.contains_key(named), "{name}: volume `{named}` is not declared");
        }
        for (source, target) in binds(&compose, name) {
            assert!(
                source.exists(),
                "{name}: mount source {} (for {target}) does not exist",
                source.display()
            );
            mounts += 1;
        }
    }
    assert_eq!(mounts, 6, "bind mounts checked");
    let context = root()
        .join(COMPOSE_DIR)
        .join(str_at(&compose, &["services", "wsprobe", "build", "context"]).unwrap());
    assert!(context.join("Dockerfile").is_file(), "build context {} has no Dockerfile", context.display());
}

#[test]
fn compose_prometheus_config_and_its_mounted_rules_pass_promtool() {
    let compose = compose();
    let view = as_container_sees_it(&compose, "prometheus");
    let config = view.path().join("etc/prometheus/prometheus.yml");
    let out = tool("promtool", &["check", "config", config.to_str().unwrap()], view.path());
    let said = assert_ok(&out, "promtool check config");
    // The rule glob must find the shipped rules where the container mounts them.
    assert!(said.contains("rules/wsprobe.yml") && said.contains("rules found"), "{said}");
    let scrape = &yaml(&format!("{COMPOSE_DIR}/prometheus.yml"))["scrape_configs"][0];
    assert_eq!(scrape["job_name"], "wsprobe", "the rules expect job=\"wsprobe\"");
    let target = scrape["static_configs"][0]["targets"][0].as_str().unwrap();
    assert!(compose["services"].get(target.split(':').next().unwrap()).is_some(), "{target} is a service");
}

#[test]
fn alertmanager_example_config_passes_amtool_as_the_container_sees_it() {
    let view = as_container_sees_it(&compose(), "alertmanager");
    let config = view.path().join("etc/alertmanager/alertmanager.yml");
    let out = tool("amtool", &["check-config", config.to_str().unwrap()], view.path());
    let said = assert_ok(&out, "amtool check-config");
    assert!(said.contains("SUCCESS") && said.contains("2 receivers"), "{said}");
}

#[test]
fn compose_wsprobe_config_is_valid_and_listens_beyond_loopback() {
    let compose = compose();
    let (source, target) = binds(&compose, "wsprobe").remove(0);
    assert_eq!(target, "/etc/wsprobe/wsprobe.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["check", "--config", source.to_str().unwrap()])
        .env("WSPROBE_TARGET_URL", "wss://api.staging.example.com/ws")
        .output()
        .unwrap();
    let said = assert_ok(&out, "wsprobe check (compose)");
    assert!(said.contains("listen 0.0.0.0:9478"), "{said}");
}

#[test]
fn grafana_provisions_the_stack_prometheus_and_the_repository_dashboards() {
    let compose = compose();
    let view = as_container_sees_it(&compose, "grafana");
    let provisioning = view.path().join("etc/grafana/provisioning");
    let datasources: Value = serde_norway::from_str(
        &std::fs::read_to_string(provisioning.join("datasources/prometheus.yaml")).unwrap(),
    )
    .unwrap();
    let ds = &datasources["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    assert_eq!(ds["url"], "http://prometheus:9090", "the compose service and its port");
    let providers: Value = serde_norway::from_str(
        &std::fs::read_to_string(provisioning.join("dashboards/wsprobe.yaml")).unwrap(),
    )
    .unwrap();
    let path = str_at(&providers["providers"][0], &["options", "path"]).unwrap();
    let dashboards: Vec<_> = std::fs::read_dir(view.path().join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("provider path {path} is not mounted: {e}"))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(dashboards.contains(&"wsprobe.json".to_owned()), "{path}: {dashboards:?}");
}

// ---------------------------------------------------------------------------------------
// Kubernetes.

const KUBE: &str = "deploy/kubernetes";
const OVERLAYS: [&str; 2] = ["overlays/single", "overlays/sharded"];
/// Kinds the Kubernetes schemas do not know; checked against the committed CRD schemas.
const CRD_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

fn kustomize(dir: &str) -> String {
    let out = tool("kubectl", &["kustomize", dir], &root().join(KUBE));
    assert_ok(&out, &format!("kubectl kustomize {dir}"));
    String::from_utf8(out.stdout).unwrap()
}

fn documents(rendered: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(rendered).map(|d| Value::deserialize(d).unwrap()).collect()
}

#[test]
fn kustomize_renders_the_base_and_both_overlays() {
    let kinds = |dir: &str| -> Vec<String> {
        let mut k: Vec<String> =
            documents(&kustomize(dir)).iter().map(|d| d["kind"].as_str().unwrap().to_owned()).collect();
        k.sort();
        k
    };
    let base = kinds("base");
    for kind in [
        "ConfigMap",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ] {
        assert!(base.iter().any(|k| k == kind), "base lacks a {kind}: {base:?}");
    }
    let single = kinds("overlays/single");
    assert!(single.contains(&"Deployment".to_owned()) && !single.contains(&"StatefulSet".to_owned()));
    let sharded = kinds("overlays/sharded");
    assert!(sharded.contains(&"StatefulSet".to_owned()) && !sharded.contains(&"Deployment".to_owned()));
}

#[test]
fn rendered_manifests_pass_the_kubernetes_schemas_and_the_crd_schemas() {
    for overlay in OVERLAYS {
        let rendered = kustomize(overlay);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &rendered).unwrap();
        let out = tool("kubernetes-validate", &["--strict", file.to_str().unwrap()], dir.path());
        let said = assert_ok(&out, &format!("kubernetes-validate --strict ({overlay})"));
        // Every core kind was validated; only the operator's kinds lack a schema there.
        for doc in documents(&rendered) {
            let kind = doc["kind"].as_str().unwrap();
            let name = doc["metadata"]["name"].as_str().unwrap();
            let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
            if CRD_KINDS.contains(&kind) {
                assert!(said.contains(&format!("Couldn't find schema for kind {kind}")), "{said}");
            } else {
                assert!(said.contains(&passed), "{overlay}: {kind}/{name} not validated:\n{said}");
            }
        }
        let out = tool("python3", &["deploy/kubernetes/schemas/check.py", file.to_str().unwrap()], &root());
        let said = assert_ok(&out, &format!("CRD schema check ({overlay})"));
        for kind in CRD_KINDS {
            assert!(said.contains(&format!("{kind}/wsprobe: valid")), "{said}");
        }
    }
}

#[test]
fn the_crd_schema_check_rejects_what_the_operator_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let bad = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: { name: wsprobe }\nspec:\n  selector: {}\n  endpoints:\n    - port: http\n      intervall: 15s\n";
    std::fs::write(&file, bad).unwrap();
    let out = tool("python3", &["deploy/kubernetes/schemas/check.py", file.to_str().unwrap()], &root());
    assert!(!out.status.success(), "a misspelt field must fail: {}", text(&out));
    assert!(text(&out).contains("intervall"), "{}", text(&out));
}

/// The PrometheusRule is alerts.yml's groups under `spec:`, comments and all.
fn prometheus_rule_from_alerts() -> String {
    let alerts = read("deploy/prometheus/alerts.yml");
    let start = alerts.find("\ngroups:").expect("alerts.yml has `groups:`") + 1;
    let mut out = String::from(
        "# GENERATED from deploy/prometheus/alerts.yml: edit that file, then run\n\
         # `WSPROBE_BLESS=1 cargo test --test deploy` to rewrite this one (tests/deploy.rs\n\
         # fails while they differ). Your Prometheus must select it (ruleSelector).\n\
         apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: wsprobe\nspec:\n",
    );
    for line in alerts[start..].lines() {
        if !line.is_empty() {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn the_prometheus_rule_equals_alerts_yml() {
    let path = root().join(KUBE).join("base/prometheusrule.yaml");
    let generated = prometheus_rule_from_alerts();
    if std::env::var_os("WSPROBE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let alerts = yaml("deploy/prometheus/alerts.yml");
    assert_eq!(
        committed["spec"]["groups"], alerts["groups"],
        "base/prometheusrule.yaml is out of date: WSPROBE_BLESS=1 cargo test --test deploy"
    );
    assert_eq!(committed["kind"], "PrometheusRule");
}

fn workload(overlay: &str) -> Value {
    documents(&kustomize(overlay))
        .into_iter()
        .find(|d| matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .unwrap()
}

#[test]
fn workloads_are_hardened_probed_and_sized() {
    for overlay in OVERLAYS {
        let w = workload(overlay);
        let pod = &w["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{overlay}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{overlay}: the image's user");
        assert_eq!(pod["automountServiceAccountToken"], false, "{overlay}");
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{overlay}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{overlay}");
        assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{overlay}");
        assert_eq!(str_at(c, &["livenessProbe", "httpGet", "path"]), Some("/healthz"), "{overlay}");
        assert_eq!(str_at(c, &["readinessProbe", "httpGet", "path"]), Some("/readyz"), "{overlay}");
        assert_eq!(str_at(c, &["resources", "requests", "cpu"]), Some("25m"), "{overlay}");
        assert_eq!(str_at(c, &["resources", "requests", "memory"]), Some("32Mi"), "{overlay}");
        assert!(str_at(c, &["resources", "limits", "memory"]).is_some(), "{overlay}");
        let mounts: Vec<&str> =
            c["volumeMounts"].as_sequence().unwrap().iter().filter_map(|m| m["mountPath"].as_str()).collect();
        assert_eq!(mounts, ["/etc/wsprobe", "/var/lib/wsprobe"], "{overlay}: config and state");
    }
}

#[test]
fn the_statefulset_shard_total_is_its_replica_count() {
    let w = workload("overlays/sharded");
    let replicas = w["spec"]["replicas"].as_u64().unwrap();
    let env = w["spec"]["template"]["spec"]["containers"][0]["env"].as_sequence().unwrap().clone();
    let value = |name: &str| {
        env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str()).map(str::to_owned)
    };
    assert_eq!(value("WSPROBE_SHARD"), Some(format!("$(POD_NAME)/{replicas}")));
    // Kubernetes expands $(POD_NAME) only when POD_NAME is defined before it.
    let pod_name = env.iter().position(|e| e["name"] == "POD_NAME").expect("POD_NAME");
    let shard = env.iter().position(|e| e["name"] == "WSPROBE_SHARD").unwrap();
    assert!(pod_name < shard);
    // What the pod's environment gives wsprobe, for the last pod of the set.
    let last = format!("wsprobe-{}/{replicas}", replicas - 1);
    let parsed: wsprobe::shard::Shard = last.parse().unwrap();
    assert_eq!(
        (parsed.index(), parsed.total()),
        (u32::try_from(replicas).unwrap() - 1, u32::try_from(replicas).unwrap())
    );
}

#[test]
fn the_base_wsprobe_config_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["check", "--config", &format!("{KUBE}/base/wsprobe.yaml")])
        .current_dir(root())
        .env("STAGING_JWT", "test-token")
        .output()
        .unwrap();
    let said = assert_ok(&out, "wsprobe check (kubernetes base)");
    assert!(said.contains("listen 0.0.0.0:9478"), "{said}");
    let env = read(&format!("{KUBE}/base/secrets.env"));
    assert!(env.lines().any(|l| l.starts_with("STAGING_JWT=")), "the secret provides ${{STAGING_JWT}}");
}

// ---------------------------------------------------------------------------------------
// systemd.

const UNIT: &str = "deploy/systemd/wsprobe.service";

/// `systemd-analyze security` of the unit before StateDirectory= was added (1.2, "OK"),
/// in tenths: the unit may only get better.
const EXPOSURE_BEFORE_TENTHS: u32 = 12;

fn directives(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.starts_with('#') && l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    map
}

#[test]
fn the_unit_gives_the_service_its_state_and_configuration_directories() {
    let d = directives(&read(UNIT));
    let one = |k: &str| d.get(k).and_then(|v| v.last()).map(String::as_str);
    assert_eq!(one("StateDirectory"), Some("wsprobe"), "state_dir: /var/lib/wsprobe must be writable");
    assert_eq!(one("ConfigurationDirectory"), Some("wsprobe"));
    assert_eq!(one("DynamicUser"), Some("yes"));
    assert_eq!(one("ProtectSystem"), Some("strict"));
    assert_eq!(one("NoNewPrivileges"), Some("yes"));
    assert!(!d.contains_key("ReadWritePaths"), "StateDirectory= alone opens /var/lib/wsprobe");
}

#[test]
fn the_unit_is_as_hardened_as_before_under_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("wsprobe.service");
    std::fs::copy(root().join(UNIT), &unit).unwrap();
    let out = tool("systemd-analyze", &["security", "--offline=yes", unit.to_str().unwrap()], dir.path());
    let said = text(&out);
    let level = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for wsprobe.service: ").nth(1))
        .unwrap_or_else(|| panic!("no exposure level in:\n{said}"));
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    let tenths = (score * 10.0).round() as u32;
    assert!(tenths <= EXPOSURE_BEFORE_TENTHS, "exposure {score} is worse than 1.2:\n{said}");
}
