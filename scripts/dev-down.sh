#!/usr/bin/env bash
# Stops the services scripts/dev-up.sh started (PostgreSQL and Redis are left running).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for pidfile in "$ROOT"/.dev/*.pid; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$pidfile" .pid) ($pid)"
    kill "$pid"
  fi
  rm -f "$pidfile"
done
