#!/usr/bin/env bash
# Stops the services scripts/dev-up.sh started (PostgreSQL and Redis are left running).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for pidfile in "$ROOT"/.dev/*.pid; do
  # nginx removes its own pid file when its master stops, so a file listed a moment ago
  # may be gone: that is not an error (under `set -e` it used to end the loop early and
  # leave the services after it, such as the ticket API, running).
  pid="$(cat "$pidfile" 2>/dev/null)" || continue
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$pidfile" .pid) ($pid)"
    kill "$pid"
  fi
  rm -f "$pidfile"
done
