#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on Debian (bookworm):
#   promtool                 (package `prometheus`): lints the /metrics exposition and
#                            the dashboard's PromQL
#   prometheus-alertmanager  a real Alertmanager for the alerting tests
#   curl
# Anything already on PATH is left alone, so a second run on a dev machine is instant.
# Needs root (or sudo) only when something is missing. Services the packages ship are
# never started: tests run their own instances on ephemeral ports.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

# command on PATH -> Debian package providing it
declare -A PROVIDES=(
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [curl]=curl
)

missing=()
for cmd in promtool prometheus-alertmanager curl; do
  if command -v "$cmd" >/dev/null 2>&1; then
    log "$cmd: present ($(command -v "$cmd"))"
  else
    missing+=("${PROVIDES[$cmd]}")
  fi
done

if ((${#missing[@]} > 0)); then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]}; this script installs them with apt-get (Debian/Ubuntu)."
    log "Install them with your package manager, or put promtool and prometheus-alertmanager on PATH."
    exit 1
  fi
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      log "missing: ${missing[*]}; run this script as root to install them."
      exit 1
    fi
  fi

  # invoke-rc.d and deb-systemd-invoke consult policy-rc.d: 101 means "do not start".
  # Install one only for the duration of this run, and only if there is none already.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Temporary, from wsprobe scripts/install-deps.sh.\nexit 101\n' \
      | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
  fi

  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o Acquire::Retries=3 -o Dpkg::Use-Pty=0)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}"

  for cmd in promtool prometheus-alertmanager curl; do
    command -v "$cmd" >/dev/null 2>&1 || { log "$cmd is still missing after the install"; exit 1; }
  done
fi

# The Rust side: a toolchain with rustfmt and clippy (scripts/test.sh runs both).
if ! command -v cargo >/dev/null 2>&1; then
  log "cargo is not on PATH; install a Rust toolchain (rustup) first."
  exit 1
fi
for component in rustfmt clippy; do
  probe=(cargo fmt --version)
  [[ $component == clippy ]] && probe=(cargo clippy --version)
  if ! "${probe[@]}" >/dev/null 2>&1; then
    log "adding the $component component"
    rustup component add "$component" || {
      log "cannot add $component (offline?); install it, e.g. \`rustup component add $component\`."
      exit 1
    }
  fi
done

log "ready: $(promtool --version 2>&1 | head -n1)"
