#!/usr/bin/env bash
# Builds wsprobe's container image offline with buildah, from `scratch` and the release
# binary, with the final layout of the Dockerfile's last stage:
#
#   /usr/local/bin/wsprobe            the binary (entrypoint), plus the shared libraries
#                                     it links (what distroless/cc provides)
#   /etc/ssl/certs/ca-certificates.crt  trust roots for wss:// targets
#   /etc/passwd, /etc/group           the `nonroot` user, 65532:65532 (the image's USER)
#   /etc/wsprobe                      configuration volume (mount wsprobe.yaml here)
#   /var/lib/wsprobe                  state volume, owned by 65532 (alerting.state_dir)
#
# No registry is contacted: nothing is pulled. `docker build .` needs an engine and the
# network; this script needs neither, which is how CI and this repository's tests prove
# the layout (tests/deploy.rs runs it, then inspects and runs the image with buildah).
#
# Environment:
#   WSPROBE_BIN            binary to package (default target/release/wsprobe, built if absent)
#   WSPROBE_IMAGE          image name (default localhost/wsprobe:dev)
#   WSPROBE_BUILDAH_ROOT   buildah storage directory (default: buildah's own); vfs driver
# Needs root (or `buildah unshare`), as buildah does with vfs storage.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'build-image: %s\n' "$*" >&2; }

bin=${WSPROBE_BIN:-target/release/wsprobe}
image=${WSPROBE_IMAGE:-localhost/wsprobe:dev}
buildah=(buildah --storage-driver vfs)
if [[ -n ${WSPROBE_BUILDAH_ROOT:-} ]]; then
  buildah+=(--root "$WSPROBE_BUILDAH_ROOT/root" --runroot "$WSPROBE_BUILDAH_ROOT/run")
fi

if [[ ! -x $bin ]]; then
  log "building $bin (cargo build --release --locked)"
  cargo build --release --locked
fi
ca=/etc/ssl/certs/ca-certificates.crt
[[ -r $ca ]] || { log "no CA bundle at $ca (Debian package ca-certificates)"; exit 1; }

stage=$(mktemp -d)
ctr=
cleanup() {
  [[ -n $ctr ]] && "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

# The root filesystem, assembled beside the build and copied in as one layer.
root=$stage/rootfs
install -D -m 0755 "$bin" "$root/usr/local/bin/wsprobe"
# Every shared library the binary loads, at the path the loader looks for it.
while read -r lib; do
  install -D -m 0755 "$lib" "$root$lib"
done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
install -D -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
install -d -m 0755 "$root/etc/wsprobe" "$root/tmp"
chmod 1777 "$root/tmp"
# The state volume is added on its own below, owned by the image's user.
install -d -m 0700 "$stage/state"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

version=$("$bin" --version)
log "packaging $version as $image"
ctr=$("${buildah[@]}" from scratch)
"${buildah[@]}" copy "$ctr" "$root/" / >/dev/null
"${buildah[@]}" copy --chown 65532:65532 "$ctr" "$stage/state" /var/lib/wsprobe >/dev/null
"${buildah[@]}" config \
  --user 65532:65532 \
  --entrypoint '["/usr/local/bin/wsprobe"]' \
  --cmd '["run", "--config", "/etc/wsprobe/wsprobe.yaml"]' \
  --volume /etc/wsprobe --volume /var/lib/wsprobe \
  --port 9478/tcp \
  --workingdir / \
  --label org.opencontainers.image.title=wsprobe \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=${version#wsprobe }" \
  "$ctr"
"${buildah[@]}" commit --quiet --rm "$ctr" "$image" >/dev/null
ctr=
log "built $image ($("${buildah[@]}" images --noheading --format '{{.Size}}' "$image"))"
