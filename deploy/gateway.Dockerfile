# syntax=docker/dockerfile:1
# The Socket.IO gateway. Build from the repository root:
#   docker build -f deploy/gateway.Dockerfile \
#     --build-arg KANBAN_GIT_REVISION="$(git rev-parse HEAD)" -t kanban/gateway .
#
# Stages: chef (the toolchain and cargo-chef), planner (the dependency recipe, which
# changes only when a Cargo.toml or Cargo.lock does), builder (dependencies compiled from
# the recipe in their own layer, then the service), and a distroless runtime with no shell.

FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
# The whole workspace's recipe: a recipe pruned to one binary no longer matches
# Cargo.lock, and the cook below builds with --locked.
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# This layer is rebuilt only when the dependency recipe changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json --package gateway --bin gateway
COPY . .
# Read at compile time (option_env!) for the build_info gauge in /metrics. Declared after
# the dependency layer so that a new revision rebuilds only the workspace crates.
ARG KANBAN_GIT_REVISION=unknown
ENV KANBAN_GIT_REVISION=${KANBAN_GIT_REVISION}
RUN cargo build --release --locked --package gateway --bin gateway

# glibc and libgcc only, user 65532 (nonroot); the same Debian release as the builder.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG KANBAN_GIT_REVISION=unknown
ARG KANBAN_VERSION=0.1.0
LABEL org.opencontainers.image.title="kanban-gateway" \
      org.opencontainers.image.description="Kanban Socket.IO gateway: rooms, Redis fan-out, resume by seq, presence" \
      org.opencontainers.image.version="${KANBAN_VERSION}" \
      org.opencontainers.image.revision="${KANBAN_GIT_REVISION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /src/target/release/gateway /usr/local/bin/gateway
USER 65532:65532
# Listen on every interface inside the container (the default, 127.0.0.1, is for local
# development); logs as JSON lines for the log collector.
ENV KANBAN_HTTP__HOST=0.0.0.0 \
    KANBAN_HTTP__PORT=3000 \
    KANBAN_LOG__JSON=true
EXPOSE 3000
# The binary probes its own /healthz: the runtime image has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gateway", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/gateway"]
