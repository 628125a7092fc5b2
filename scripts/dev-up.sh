#!/usr/bin/env bash
# Brings the local stack up: PostgreSQL and Redis (installed and started if missing), the
# database, the ticket API (migrations run at its start), two gateways and nginx in front
# of them. Safe to run again: it rebuilds and restarts what it started before. Stop it
# with scripts/dev-down.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

API_PORT="${KANBAN_API_PORT:-8080}"
GW1_PORT="${KANBAN_GW1_PORT:-3001}"
GW2_PORT="${KANBAN_GW2_PORT:-3002}"
PORT="${KANBAN_PORT:-8000}"
STATE="$ROOT/.dev"
mkdir -p "$STATE"

ensure_base_tools
ensure_rust
ensure_postgres
ensure_redis
ensure_database kanban
ensure_nginx
ensure_web_node

log "building the services"
cargo build --locked -p ticket-api -p gateway

log "building the web board (services/web)"
(cd services/web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)

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
  KANBAN_REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
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


start_gateway() {
  local name="$1" port="$2"
  stop_pidfile "$STATE/$name.pid"
  log "starting $name on 127.0.0.1:$port"
  KANBAN_HTTP__PORT="$port" \
  KANBAN_API__BASE_URL="http://127.0.0.1:$API_PORT" \
  KANBAN_AUTH__JWT_SECRET="$(cat "$STATE/jwt-secret")" \
  KANBAN_GATEWAY__INSTANCE_ID="$name" \
  KANBAN_REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
  KANBAN_GATEWAY__DRAIN_WINDOW_MS=2000 \
    setsid "$CARGO_TARGET_DIR/debug/gateway" >"$STATE/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
  wait_ready "$name" "http://127.0.0.1:$port/readyz"
}

wait_ready() {
  local name="$1" url="$2"
  for _ in $(seq 1 60); do
    if curl -fsS "$url" >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -n 20 "$STATE/$name.log" >&2
  die "$name did not become ready (log: .dev/$name.log)"
}

start_nginx() {
  stop_pidfile "$STATE/nginx-main.pid"
  local web_root="$ROOT/services/web/dist"
  [ -d "$web_root" ] || { web_root="$STATE/www"; mkdir -p "$web_root"; }
  mkdir -p "$STATE/nginx-tmp"
  sed -e "s|@STATE@|$STATE|g" -e "s|@API_PORT@|$API_PORT|g" -e "s|@GW1_PORT@|$GW1_PORT|g" \
      -e "s|@GW2_PORT@|$GW2_PORT|g" -e "s|@PORT@|$PORT|g" -e "s|@WEB_ROOT@|$web_root|g" \
      "$ROOT/deploy/local/nginx.conf.template" > "$STATE/nginx.conf"
  mapfile -t nginx_user < <(nginx_user_args)
  nginx -t -q -c "$STATE/nginx.conf" -p "$STATE" "${nginx_user[@]}" 2>"$STATE/nginx-check.log" \
    || { cat "$STATE/nginx-check.log" >&2; die "nginx configuration is invalid"; }
  log "starting nginx on 127.0.0.1:$PORT"
  setsid nginx -c "$STATE/nginx.conf" -p "$STATE" "${nginx_user[@]}" >"$STATE/nginx.log" 2>&1 < /dev/null &
  echo $! > "$STATE/nginx-main.pid"
  for _ in $(seq 1 40); do
    curl -fsS "http://127.0.0.1:$PORT/api/openapi.json" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "nginx did not answer on 127.0.0.1:$PORT (log: .dev/nginx-error.log)"
}

start_api
start_gateway gw1 "$GW1_PORT"
start_gateway gw2 "$GW2_PORT"
start_nginx

cat <<MSG

Kanban is up: http://127.0.0.1:$PORT   (open it in two browsers and sign in as two users)
  API:               http://127.0.0.1:$PORT/api/   (OpenAPI: /api/openapi.json)
  Socket.IO:         http://127.0.0.1:$PORT/socket.io/   (gateways gw1 :$GW1_PORT, gw2 :$GW2_PORT)
  Logs:              .dev/*.log                   Stop: scripts/dev-down.sh

Try it:
  TOKEN=\$(curl -s -X POST http://127.0.0.1:$PORT/api/auth/dev-token \\
      -H 'content-type: application/json' -d '{"userId":"alice","name":"Alice"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s -X POST http://127.0.0.1:$PORT/api/projects -H "authorization: Bearer \$TOKEN" \\
      -H 'content-type: application/json' -d '{"name":"My board"}'
MSG
