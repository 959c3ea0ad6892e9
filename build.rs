//! Records the git revision for `wsprobe_build_info{revision}` and `--version`.
use std::process::Command;

fn main() {
    let revision = std::env::var("WSPROBE_REVISION").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    });
    println!("cargo:rustc-env=WSPROBE_REVISION={}", revision.unwrap_or_else(|| "unknown".to_owned()));
    println!("cargo:rerun-if-env-changed=WSPROBE_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
