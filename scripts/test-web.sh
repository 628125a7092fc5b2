#!/usr/bin/env bash
# The web board's tests (services/web): the type check, the unit tests of the stores, the
# sync logic and the socket and API code (vitest, the last against the built ticket-api
# and gateways; line coverage measured and gated by coverage.json), the build (which
# prerenders the board without a browser), and the end-to-end tests in headless Chromium
# against a real stack (ticket API, two gateways behind nginx, PostgreSQL, Redis) that the
# tests start on free ports.
# Ends with one line: "web: N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_base_tools
ensure_rust
ensure_postgres
ensure_redis
ensure_web_node
ensure_nginx
ensure_chromium

log "building ticket-api and gateway for the end-to-end tests"
cargo build --locked -p ticket-api -p gateway

cd services/web
log "npm ci (services/web)"
npm ci --no-audit --no-fund --loglevel=error

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
status=0

log "svelte-check (types, warnings are errors)"
npm run --silent check || status=1

log "vitest (stores, sync logic, socket and API client; line coverage: coverage.json)"
rm -rf coverage
npx vitest run --coverage --reporter=default --reporter=json --outputFile="$results/unit.json" || status=1

log "npm run build (static files for nginx; prerender without a browser)"
npm run --silent build || status=1

log "end-to-end tests in headless Chromium (screenshots: services/web/e2e-artifacts/)"
rm -rf e2e-artifacts
node --test --test-concurrency=1 --test-timeout=600000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$results/e2e.tap" \
  e2e/ || status=1

unit_pass=0; unit_fail=0
if [ -s "$results/unit.json" ]; then
  read -r unit_pass unit_fail < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.numPassedTests, r.numFailedTests + (r.numRuntimeErrorCount ?? 0));' "$results/unit.json")
else
  unit_fail=1
fi
e2e_pass="$(grep -E '^# pass ' "$results/e2e.tap" 2>/dev/null | awk '{s+=$3} END {print s+0}')"
e2e_fail="$(grep -E '^# fail ' "$results/e2e.tap" 2>/dev/null | awk '{s+=$3} END {print s+0}')"
[ -s "$results/e2e.tap" ] || e2e_fail=1
# A step that failed without failing a test (type check, build) counts as one failure.
extra=0
if [ "$status" -ne 0 ] && [ $((unit_fail + e2e_fail)) -eq 0 ]; then extra=1; fi
echo
echo "unit: $unit_pass passed, $unit_fail failed; end-to-end: $e2e_pass passed, $e2e_fail failed"
echo "web: $((unit_pass + e2e_pass)) passed, $((unit_fail + e2e_fail + extra)) failed"
exit "$status"
