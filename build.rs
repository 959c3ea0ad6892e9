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
    // Watch only what exists: a missing path makes Cargo rerun this (and rebuild the
    // crate) on every command, as in a source tarball without `.git`.
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
