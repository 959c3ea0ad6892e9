#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: the status page's overview and a target's page, at
# desktop (1280x900) and phone (390x844) widths, in light and dark mode. They are taken
# by the browser test (tests/browser.rs), which starts the real binary against servers
# on loopback and loads the pages in headless Chromium (installed by install-deps.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mkdir -p docs/screenshots
WSPROBE_SCREENSHOTS="$PWD/docs/screenshots" cargo test --test browser -- --nocapture
ls -l docs/screenshots/*.png
