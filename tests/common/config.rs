//! The `wsprobe` binary as the configuration tests run it: from the crate root (fixture
//! and example paths are relative to it), with the fixture secret set and the variables
//! the fixtures and `config/example.yaml` read under control.

use std::path::Path;
use std::process::{Command, Output};

use wsprobe::config::{self, Config};

/// Set in every golden test's environment; must never be printed.
pub const SECRET: &str = "hunter2-fixture-secret-value";
/// What the example's `${STAGING_JWT}` expands to in these tests.
pub const STAGING_JWT: &str = "example-jwt-for-tests";

/// The binary, run from the crate root with a controlled environment.
pub fn wsprobe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsprobe"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("WSPROBE_FIXTURE_UNSET")
        .env("WSPROBE_FIXTURE_SECRET", SECRET)
        .env("STAGING_JWT", STAGING_JWT);
    cmd
}

pub fn run(args: &[&str]) -> Output {
    wsprobe().args(args).output().expect("run wsprobe")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses `yaml` as the library does, without reading a file.
pub fn parse(yaml: &str) -> Result<Config, config::ConfigError> {
    config::parse(Path::new("test.yaml"), yaml)
}
