#!/usr/bin/env bash
# Brings the local stack up: PostgreSQL and Redis (installed and started if missing), the
# database, and the ticket API (migrations run at its start). Safe to run again: it
# rebuilds and restarts what it started before. Stop it with scripts/dev-down.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

API_PORT="${KANBAN_API_PORT:-8080}"
STATE="$ROOT/.dev"
mkdir -p "$STATE"

ensure_base_tools
ensure_rust
ensure_postgres
ensure_redis
ensure_database kanban

log "building the services"
cargo build --locked -p ticket-api

# A development secret, made once and kept out of git.
[ -s "$STATE/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$STATE/jwt-secret"

stop_pidfile() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pidfile"
}

start_api() {
  stop_pidfile "$STATE/ticket-api.pid"
  log "starting ticket-api on 127.0.0.1:$API_PORT"
  KANBAN_HTTP__PORT="$API_PORT" \
  KANBAN_DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/kanban" \
  KANBAN_AUTH__JWT_SECRET="$(cat "$STATE/jwt-secret")" \
  KANBAN_AUTH__DEV_TOKENS=true \
    setsid "$CARGO_TARGET_DIR/debug/ticket-api" >"$STATE/ticket-api.log" 2>&1 < /dev/null &
  echo $! > "$STATE/ticket-api.pid"
  for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$STATE/ticket-api.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -n 20 "$STATE/ticket-api.log" >&2
  die "ticket-api did not become ready (log: .dev/ticket-api.log)"
}

start_api

cat <<MSG

Kanban API is up: http://127.0.0.1:$API_PORT
  OpenAPI document:  http://127.0.0.1:$API_PORT/api/openapi.json
  Logs:              .dev/ticket-api.log          Stop: scripts/dev-down.sh

Try it:
  TOKEN=\$(curl -s -X POST http://127.0.0.1:$API_PORT/api/auth/dev-token \\
      -H 'content-type: application/json' -d '{"userId":"alice","name":"Alice"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s -X POST http://127.0.0.1:$API_PORT/api/projects -H "authorization: Bearer \$TOKEN" \\
      -H 'content-type: application/json' -d '{"name":"My board"}'
MSG
