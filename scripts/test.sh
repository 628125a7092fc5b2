#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests against real
# PostgreSQL and Redis on loopback (installed and started if missing), then the web
# board's tests (scripts/test-web.sh). The Rust tests run once, instrumented: the line
# coverage of each crate and of the web client is printed at the end, and a gated one
# below its minimum fails the run (coverage.json, docs/testing.md).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_base_tools
ensure_rust
ensure_coverage_tools
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
  # The benchmark build's counting allocator (kanban-loadtest idle) is compiled only here.
  cargo clippy -p gateway --features heap-stats --locked -- -D warnings
else
  log "clippy is not installed; skipping lints"
fi

log "module layering: no import cycle between the modules of any crate (scripts/check_imports.py)"
python3 scripts/check_imports.py

log "observability: promtool rules and tests, dashboard, runbooks, k8s copies"
bash scripts/check-observability.sh

log "npm ci (the stock socket.io-client for the gateway's end-to-end test)"
(cd services/gateway/tests/node && npm ci --no-audit --no-fund --loglevel=error)

log "TypeScript declarations (services/web/src/lib/protocol) match shared/protocol"
cargo test -p kanban-protocol --features ts --locked

log "deployment files: scripts/check-deploy.sh (images, compose, k8s, nginx, probes)"
deploy_log="$CARGO_TARGET_DIR/last-deploy-run.log"
set +e
bash scripts/check-deploy.sh 2>&1 | tee "$deploy_log"
deploy_status="${PIPESTATUS[0]}"
set -e

log "cargo test, instrumented for line coverage (cargo llvm-cov)"
# Built with -C instrument-coverage in a target dir of its own
# ($CARGO_TARGET_DIR/llvm-cov-target), so that the plain debug build stays valid. The
# binaries that tests start as processes are these instrumented ones too. Output goes to
# a file that is followed until cargo exits, so that a stray process holding the output
# open can never keep this script waiting.
log_file="$CARGO_TARGET_DIR/last-test-run.log"
coverage_dir="$CARGO_TARGET_DIR/coverage"
mkdir -p "$coverage_dir"
rm -f "$coverage_dir/rust.lcov"
cargo llvm-cov clean --profraw-only  # the profiles of an earlier run
: > "$log_file"  # exists before tail opens it, however the two are scheduled
cargo llvm-cov --workspace --locked --no-fail-fast --no-report >"$log_file" 2>&1 &
test_pid=$!
tail -n +1 -f --pid="$test_pid" "$log_file"
status=0
wait "$test_pid" || status=$?
summary="$(grep -E '^test result:' "$log_file" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}')"
echo
echo "$summary"
log "merging the coverage profiles (cargo llvm-cov report)"
cargo llvm-cov report --lcov --output-path "$coverage_dir/rust.lcov" || true

log "web board: scripts/test-web.sh (unit tests, build, end-to-end in headless Chromium)"
web_log="$CARGO_TARGET_DIR/last-web-run.log"
set +e
scripts/test-web.sh 2>&1 | tee "$web_log"
web_status="${PIPESTATUS[0]}"
set -e

log "line coverage (rules and exclusions: coverage.json; per file: $coverage_dir/rust-files.txt)"
coverage_status=0
if [ -s "$coverage_dir/rust.lcov" ]; then
  python3 scripts/coverage.py rust "$coverage_dir/rust.lcov" --files "$coverage_dir/rust-files.txt" \
    || coverage_status=1
else
  echo "coverage: no Rust coverage report (cargo llvm-cov report failed)"
  coverage_status=1
fi
# The web client's gate is vitest's (services/web/vite.config.ts): it failed the web tests.
python3 scripts/coverage.py web services/web/coverage/coverage-summary.json || true
coverage_fail=0
[ "$coverage_status" -eq 0 ] || coverage_fail=1

[ "$status" -ne 0 ] || status="$web_status"
[ "$status" -ne 0 ] || status="$deploy_status"
[ "$status" -ne 0 ] || status="$coverage_status"
# One closing line for everything that ran: the Rust tests, the web board's and the
# deployment checks; a failed Rust coverage gate counts as one failure.
read -r web_pass web_fail < <(sed -nE 's/^web: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$web_log" | tail -n1)
read -r rust_pass rust_fail < <(echo "$summary" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/')
read -r deploy_pass deploy_fail < <(sed -nE 's/^deploy: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$deploy_log" | tail -n1)
echo
echo "total: $((rust_pass + ${web_pass:-0} + ${deploy_pass:-0})) passed, $((rust_fail + ${web_fail:-1} + ${deploy_fail:-1} + coverage_fail)) failed"
exit "$status"
