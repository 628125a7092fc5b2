#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests against real
# PostgreSQL and Redis on loopback (installed and started if missing).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_base_tools
ensure_rust
ensure_postgres
ensure_redis
ensure_node
export KANBAN_TEST_DATABASE_URL="${KANBAN_TEST_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres}"
export KANBAN_TEST_REDIS_URL="${KANBAN_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"

log "cargo fmt --check"
if rustup component list --installed 2>/dev/null | grep -q rustfmt || command -v rustfmt >/dev/null; then
  cargo fmt --all -- --check
else
  log "rustfmt is not installed; skipping the format check"
fi

log "cargo clippy (warnings are errors)"
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  log "clippy is not installed; skipping lints"
fi

log "npm ci (the stock socket.io-client for the gateway's end-to-end test)"
(cd services/gateway/tests/node && npm ci --no-audit --no-fund --loglevel=error)

log "deployment files (scripts/check-deploy.sh)"
bash scripts/check-deploy.sh

log "cargo test"
# Output goes to a file that is followed until cargo exits, so that a stray process
# holding the output open can never keep this script waiting.
log_file="$CARGO_TARGET_DIR/last-test-run.log"
cargo test --workspace --locked --no-fail-fast >"$log_file" 2>&1 &
test_pid=$!
tail -n +1 -f --pid="$test_pid" "$log_file"
status=0
wait "$test_pid" || status=$?
summary="$(grep -E '^test result:' "$log_file" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}')"
echo
echo "$summary"
exit "$status"
