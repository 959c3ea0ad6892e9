#!/usr/bin/env bash
# The one test command, used by the README and by CI (.ci/run): installs what the tests
# need (promtool, Alertmanager; instant when present), then formatting and lints, so a
# style slip fails in seconds rather than after the build, then every test, so the
# output ends with cargo test's summary.
#
# Benchmarks are compiled (clippy --all-targets) but not run here: they are measurement
# programs (`cargo bench`, see BENCHMARKS.md), not tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings
exec cargo test --lib --bins --tests --no-fail-fast
