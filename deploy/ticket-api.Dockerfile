# syntax=docker/dockerfile:1
# The ticket API. Build from the repository root:
#   docker build -f deploy/ticket-api.Dockerfile \
#     --build-arg KANBAN_GIT_REVISION="$(git rev-parse HEAD)" -t kanban/ticket-api .
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
RUN cargo chef cook --release --locked --recipe-path recipe.json --package ticket-api --bin ticket-api
COPY . .
# Read at compile time (option_env!) for the build_info gauge in /metrics. Declared after
# the dependency layer so that a new revision rebuilds only the workspace crates.
ARG KANBAN_GIT_REVISION=unknown
ENV KANBAN_GIT_REVISION=${KANBAN_GIT_REVISION}
RUN cargo build --release --locked --package ticket-api --bin ticket-api

# glibc and libgcc only, user 65532 (nonroot); the same Debian release as the builder.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG KANBAN_GIT_REVISION=unknown
ARG KANBAN_VERSION=0.1.0
LABEL org.opencontainers.image.title="kanban-ticket-api" \
      org.opencontainers.image.description="Kanban ticket API: projects, tickets, state machine, transactional outbox to Redis" \
      org.opencontainers.image.version="${KANBAN_VERSION}" \
      org.opencontainers.image.revision="${KANBAN_GIT_REVISION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /src/target/release/ticket-api /usr/local/bin/ticket-api
USER 65532:65532
# Listen on every interface inside the container (the default, 127.0.0.1, is for local
# development); logs as JSON lines for the log collector.
ENV KANBAN_HTTP__HOST=0.0.0.0 \
    KANBAN_HTTP__PORT=8080 \
    KANBAN_LOG__JSON=true
EXPOSE 8080
# The binary probes its own /healthz: the runtime image has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/ticket-api", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/ticket-api"]
