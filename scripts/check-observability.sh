#!/usr/bin/env bash
# Checks the observability files an operator loads as they are: the Prometheus rules
# (promtool check rules, and promtool test rules with a firing and a quiet case for every
# alert), the Grafana dashboard (JSON, the ${datasource} variable, a PromQL expression in
# every panel), the runbook line of every alert in docs/operations.md, and that the
# Kubernetes copies in k8s/base/observability match their sources. Prints
# `observability: N passed, N failed` and fails if any check failed.
#
# promtool comes from Debian's `prometheus` package, unpacked (not installed: no server is
# started) into a cache directory once; set PROMTOOL to use another binary.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

RULES=deploy/observability/prometheus/kanban-rules.yml
RULE_TESTS=deploy/observability/prometheus/kanban-rules.test.yml
TOOLS_DIR="${KANBAN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kanban-tools}"

ensure_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then return 0; fi
  if command -v promtool >/dev/null; then PROMTOOL="$(command -v promtool)"; return 0; fi
  local dir="$TOOLS_DIR/prometheus"
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    command -v apt-get >/dev/null || die "promtool is missing and apt-get is not available: set PROMTOOL"
    local download
    download="$(mktemp -d)"
    log "downloading Debian's prometheus package for promtool"
    if ! (cd "$download" && apt-get download -qq prometheus >/dev/null 2>&1); then
      # The package lists may be missing or stale: refresh them once and retry.
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      (cd "$download" && apt-get download -qq prometheus >/dev/null)
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    dpkg-deb -x "$download"/prometheus_*.deb "$dir"
    rm -rf "$download"
  fi
  PROMTOOL="$dir/usr/bin/promtool"
}

ensure_python_yaml() {
  python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
}

passed=0
failed=0
check() {
  local name="$1"
  shift
  local output
  if output="$("$@" 2>&1)"; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n%s\n' "$name" "$output" | sed 's/^/      /;1s/^      //'
  fi
}

ensure_base_tools
ensure_promtool
ensure_python_yaml
log "promtool: $("$PROMTOOL" --version 2>&1 | head -n1)"

check "promtool check rules" "$PROMTOOL" check rules "$RULES"
check "promtool test rules" "$PROMTOOL" test rules "$RULE_TESTS"
check "every alert is tested firing and quiet" python3 scripts/observability.py check-rule-tests
check "every alert has a runbook in docs/operations.md" python3 scripts/observability.py check-runbooks
check "dashboard: JSON, \${datasource}, a PromQL expr in every panel" python3 scripts/observability.py check-dashboard
check "k8s/base/observability matches its sources" python3 scripts/observability.py generate --check

echo
echo "observability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
