# syntax=docker/dockerfile:1
# Container image for the guild chat backend: one image, three binaries (gateway, router-worker,
# bot-worker). The container command selects the binary, e.g. `docker run IMAGE router-worker`.
#
# Layers are ordered for caching: cargo-chef turns the workspace manifests + Cargo.lock into a
# recipe, the dependency layer is built from the recipe alone (rebuilt only when a manifest or the
# lock file changes), and only then is the source copied in. Everything builds with `--locked`.
#
#   docker build -t guild-chat:local .                          # release profile
#   docker build --build-arg CARGO_PROFILE=dev -t guild-chat:dev .

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Cargo profile to build with: release (default), dev, or any custom profile of the workspace.
ARG CARGO_PROFILE=release
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --locked --profile "${CARGO_PROFILE}" \
        -p gateway -p router-worker -p bot-worker --recipe-path recipe.json
COPY . .
RUN cargo build --locked --profile "${CARGO_PROFILE}" -p gateway -p router-worker -p bot-worker \
    && case "${CARGO_PROFILE}" in dev) out=debug ;; *) out="${CARGO_PROFILE}" ;; esac \
    && mkdir -p /out \
    && cp "target/${out}/gateway" "target/${out}/router-worker" "target/${out}/bot-worker" /out/

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to an OTLP collector or an LLM endpoint. Unpinned on purpose: the security
# updates of the Debian release are what we want in a rebuilt image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 chat \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin chat
COPY --from=builder /out/ /usr/local/bin/
COPY deploy/container-healthcheck.sh /usr/local/bin/healthcheck
# gateway: 8080 (WebSocket /ws, HTTP API, /healthz /readyz) and 9090 (OPS_LISTEN_ADDR:
# /metrics /healthz /readyz; set OPS_LISTEN_ADDR=0.0.0.0:9090 in a container, loopback otherwise);
# router-worker: 9091 and bot-worker: 9092 (/healthz /readyz /metrics only).
EXPOSE 8080 9090 9091 9092
USER 65532:65532
ENV LOG_FORMAT=json
CMD ["gateway"]
