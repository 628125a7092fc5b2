#!/usr/bin/env bash
# Runs the gateway and ticket-API test suites again and again beside CPU hogs, to show
# that they do not depend on an idle machine. Bounded: RUNS runs, each suite run killed
# after SUITE_TIMEOUT seconds, the whole script stopped after MAX_MINUTES.
#
#   scripts/stress-tests.sh [RUNS] [HOGS]      (defaults: 20 runs, 2 busy loops)
#
# Prints one line per run and a closing `stress: N passed, N failed` (runs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

RUNS="${1:-20}"
HOGS="${2:-2}"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-600}"
MAX_MINUTES="${MAX_MINUTES:-90}"

ensure_rust
ensure_postgres
ensure_redis
export KANBAN_TEST_DATABASE_URL="${KANBAN_TEST_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres}"
export KANBAN_TEST_REDIS_URL="${KANBAN_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"

log "building the test binaries once"
mapfile -t binaries < <(
  cargo test --locked -p gateway -p ticket-api --test gateway --test api --no-run \
    --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("gateway", "api") and "test" in m["target"]["kind"]:
        print(m["executable"])
')
[ "${#binaries[@]}" -eq 2 ] || die "expected the gateway and api test binaries, got: ${binaries[*]}"

out="$(mktemp -d "${TMPDIR:-/tmp}/kanban-stress.XXXXXX")"
hogs=()
cleanup() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq 1 "$HOGS"); do
  ( while :; do :; done ) &
  hogs+=("$!")
done
log "$HOGS busy loops started (pids ${hogs[*]}); logs in $out"

deadline=$(( $(date +%s) + MAX_MINUTES * 60 ))
passed=0
failed=0
for run in $(seq 1 "$RUNS"); do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "stopping: $MAX_MINUTES minutes are up"
    break
  fi
  started=$(date +%s)
  ok=1
  failures=""
  for binary in "${binaries[@]}"; do
    name="$(basename "$binary" | sed 's/-[0-9a-f]*$//')"
    logf="$out/run-$run-$name.log"
    if ! timeout "$SUITE_TIMEOUT" "$binary" >"$logf" 2>&1; then
      ok=0
      failures+=" $name:[$(grep -E '^test .* FAILED$' "$logf" | awk '{print $2}' | tr '\n' ' ')]"
    fi
  done
  took=$(( $(date +%s) - started ))
  if [ "$ok" -eq 1 ]; then
    passed=$((passed + 1))
    echo "run $run: ok (${took}s)"
  else
    failed=$((failed + 1))
    echo "run $run: FAILED (${took}s)$failures"
  fi
done
echo
echo "stress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
