# syntax=docker/dockerfile:1
# wsprobe's container image: `docker build -t wsprobe .`
#
# Two stages. The build stage compiles the release binary; the final stage is distroless
# (glibc, CA certificates, /etc/passwd, no shell, no package manager) with only the binary
# added. The process runs as the unprivileged `nonroot` user (65532), needs no capability,
# and works with a read-only root filesystem: it writes only to the state volume.
#
#   docker run -d -p 9478:9478 \
#     -v "$PWD/wsprobe.yaml:/etc/wsprobe/wsprobe.yaml:ro" -v wsprobe-state:/var/lib/wsprobe \
#     --read-only wsprobe
#
# The configuration must listen beyond the container's loopback (`listen: 0.0.0.0:9478`)
# and may set `alerting.state_dir: /var/lib/wsprobe`. There is no HEALTHCHECK: the image
# has no shell or HTTP client to run one. Orchestrators probe over HTTP instead: `/healthz`
# (alive) and `/readyz` (configuration loaded, first round done); see deploy/README.md.

# The oldest Rust the locked dependencies build with (time 0.3.55 needs 1.88).
ARG RUST_VERSION=1.88

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The revision shown by `wsprobe --version` and wsprobe_build_info (.git is not sent).
ARG WSPROBE_REVISION=unknown
ENV WSPROBE_REVISION=${WSPROBE_REVISION}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/wsprobe /out/usr/local/bin/wsprobe \
    && install -d -m 0755 /out/etc/wsprobe \
    && install -d -m 0700 /out/var/lib/wsprobe

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/wsprobe /usr/local/bin/wsprobe
COPY --from=build /out/etc/wsprobe /etc/wsprobe
COPY --from=build --chown=65532:65532 /out/var/lib/wsprobe /var/lib/wsprobe
USER 65532:65532
VOLUME ["/etc/wsprobe", "/var/lib/wsprobe"]
EXPOSE 9478
LABEL org.opencontainers.image.title="wsprobe" \
      org.opencontainers.image.description="Continuous WebSocket synthetic monitoring" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/wsprobe"]
CMD ["run", "--config", "/etc/wsprobe/wsprobe.yaml"]
