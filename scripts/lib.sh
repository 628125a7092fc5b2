#!/usr/bin/env bash
# Shared helpers for the project's scripts: install and start what the stack needs.
# Sourced, not run. Every function is idempotent.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kanban-target}"
PG_HOST=127.0.0.1
PG_PORT="${KANBAN_PG_PORT:-5432}"
REDIS_PORT="${KANBAN_REDIS_PORT:-6379}"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "need these packages and apt-get is missing: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null || die "Rust is not installed: install rustup (https://rustup.rs) and run this again"
  local version
  version="$(rustc --version | awk '{print $2}')"
  # actix-web 4.18 and the lockfile need Rust 1.89 or newer.
  if [ "$(printf '%s\n1.89.0\n' "$version" | sort -V | head -n1)" != "1.89.0" ]; then
    die "Rust $version is too old: 1.89 or newer is needed ('rustup update stable')"
  fi
  apt_install gcc libc6-dev pkg-config
}

# Line coverage of the Rust tests (scripts/test.sh): the toolchain's llvm-tools component
# (rustup) and cargo-llvm-cov from crates.io at this version, in cargo's bin dir.
CARGO_LLVM_COV_VERSION=0.9.1
ensure_coverage_tools() {
  command -v rustup >/dev/null || die "line coverage needs rustup (for the llvm-tools component of this toolchain)"
  if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
    log "rustup component add llvm-tools-preview"
    rustup component add llvm-tools-preview \
      || die "the llvm-tools component could not be installed (rustup must reach its distribution server)"
  fi
  if [ "$(cargo llvm-cov --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LLVM_COV_VERSION" ]; then
    log "installing cargo-llvm-cov $CARGO_LLVM_COV_VERSION"
    # In a temporary target dir of cargo's own, removed afterwards.
    env -u CARGO_TARGET_DIR cargo install cargo-llvm-cov --version "$CARGO_LLVM_COV_VERSION" --locked
  fi
}

ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql postgresql-client
  if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
    sleep 1
  done
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL did not start on $PG_HOST:$PG_PORT"
  # Local development and tests use trust auth on loopback for the postgres user.
  if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -c 'select 1' >/dev/null 2>&1; then
    die "cannot connect as postgres@$PG_HOST:$PG_PORT; allow trust (or set KANBAN_TEST_DATABASE_URL / KANBAN_DATABASE__URL with a password)"
  fi
}

ensure_database() {
  local name="$1"
  if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='$name'" | grep -q 1; then
    log "creating database $name"
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -qc "create database $name" >/dev/null
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then return 0; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp --logfile "/tmp/kanban-redis-$REDIS_PORT.log"
  for _ in $(seq 1 20); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "Redis did not start on 127.0.0.1:$REDIS_PORT"
}

ensure_node() {
  command -v node >/dev/null || apt_install nodejs
  command -v npm >/dev/null || apt_install npm
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 18 ] || die "Node.js $major is too old: 18 or newer is needed"
}

# The web board's build (Vite 7) needs Node.js 20.19 or newer.
ensure_web_node() {
  ensure_node
  local version
  version="$(node -p 'process.versions.node')"
  if [ "$(printf '%s\n20.19.0\n' "$version" | sort -V | head -n1)" != "20.19.0" ]; then
    die "Node.js $version is too old for the web board: 20.19 or newer is needed"
  fi
}

ensure_nginx() {
  command -v nginx >/dev/null || apt_install nginx-light || apt_install nginx
}

# Headless Chromium for the web board's end-to-end tests, from Debian (playwright-core
# drives it; its own browser downloads are not used).
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

# nginx started by root runs its workers as `nobody`, who cannot read a web root inside a
# private folder (a home directory, a mktemp -d folder): a checkout there would serve 403.
# These local, loopback-only nginx instances run their workers as the invoking user.
nginx_user_args() {
  if [ "$(id -u)" -eq 0 ]; then printf '%s\n' -g 'user root;'; fi
}

ensure_base_tools() {
  local need=()
  command -v curl >/dev/null || need+=(curl)
  command -v python3 >/dev/null || need+=(python3)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}
