#!/usr/bin/env python3
"""Consistency checks of the deployment files that no schema can make (run by
scripts/check-deploy.sh, which installs PyYAML with the validators).

    check_deploy.py static OVERLAY_DIR...   every check below; one line per result
    check_deploy.py probes OVERLAY_DIR...   "<service> <path>" for each probe path used

Static checks: every KANBAN_* variable set by docker-compose.yml, the Dockerfiles and
the Kubernetes objects exists in its service's settings structs; the gateway's grace
period exceeds its drain window plus its stop time (compose and every overlay), the
API's exceeds its preStop delay plus its shutdown timeout; Services, Ingresses, PDBs,
the HPA, NetworkPolicies and the ServiceMonitor point at objects that exist; every
workload is non-root with a read-only root filesystem and has probes, requests and
limits; images are pinned; the compose stack publishes on loopback only by default;
the compose nginx routes to the compose services and the gateways' instance ids.
"""

import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Seconds a gateway needs after its drain window before it exits
# (services/gateway/src/startup.rs, `Shutdown::drain`): up to 2 s waiting for the last
# sessions past the window, up to 2 s withdrawing presence, then the HTTP server's
# shutdown timeout of 2 s. STOP_TIME_SOURCES must still be there for this to hold.
GATEWAY_STOP_SECONDS = 6
STOP_TIME_SOURCES = [
    "window + Duration::from_secs(2)",
    "tokio::time::timeout(Duration::from_secs(2), task)",
    ".shutdown_timeout(2)",
]

results = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    key = "passed" if ok else "failed"
    results[key] += 1
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{'' if ok or not detail else ': ' + detail}")
    return ok


def skip(what, reason):
    print(f"  skip {what}: {reason}")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# --- the settings structs -----------------------------------------------------------

STRUCT_SOURCES = {
    "ticket-api": ["services/ticket-api/src/config.rs"],
    "gateway": ["services/gateway/src/config.rs"],
}
SHARED_SOURCES = [
    "shared/auth/src/lib.rs",
    "shared/config/src/redis.rs",
    "shared/telemetry/src/lib.rs",
    "shared/telemetry/src/trace.rs",
]


def struct_fields(sources):
    """{struct name: [(field, type)]} of every `pub struct` with named fields."""
    structs = {}
    for path in sources:
        text = read(path)
        for match in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
            fields = re.findall(r"^\s*pub (\w+):\s*([\w:<>]+)", match.group(2), re.M)
            structs[match.group(1)] = fields
    return structs


def env_names(service):
    """Every KANBAN_<SECTION>__<KEY> the service reads, from its Settings struct."""
    structs = struct_fields(STRUCT_SOURCES[service] + SHARED_SOURCES)
    names = {"KANBAN_CONFIG_FILE"}
    for section, section_type in structs["Settings"]:
        for field, _ in structs.get(section_type, []):
            names.add(f"KANBAN_{section.upper()}__{field.upper()}")
    return names


def service_of_image(image):
    for service in ("ticket-api", "gateway", "web"):
        if re.search(rf"(^|/){service}(:|@|$)", image or ""):
            return service
    return None


# --- Kubernetes objects ---------------------------------------------------------------


def load_overlay(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def workloads(objects):
    return [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet")]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def k8s_env(container, configmaps):
    names = [e["name"] for e in container.get("env", [])]
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            names += list(configmaps.get(ref["name"], {}).keys())
    return names


def k8s_value(container, configmaps, name):
    for e in container.get("env", []):
        if e["name"] == name and "value" in e:
            return e["value"]
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and name in configmaps.get(ref["name"], {}):
            return configmaps[ref["name"]][name]
    return None


def default_of(service, field):
    """A numeric default from the service's settings `Default` impl."""
    text = read(STRUCT_SOURCES[service][0])
    match = re.search(rf"\b{field}:\s*([\d_]+)", text)
    return int(match.group(1).replace("_", "")) if match else None


def prestop_seconds(container):
    sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep")
    return int(sleep["seconds"]) if sleep else 0


def check_overlay(path):
    name = os.path.basename(path)
    objects = load_overlay(path)
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind(objects, "ConfigMap")}
    services = by_kind(objects, "Service")
    deployments = by_kind(objects, "Deployment")
    print(f"k8s overlay {name}:")

    for workload in workloads(objects):
        wname = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = workload["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext", {})
        for c in containers(workload):
            sc = c.get("securityContext", {})
            check(
                (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) is True
                and sc.get("readOnlyRootFilesystem") is True
                and sc.get("allowPrivilegeEscalation") is False
                and "ALL" in sc.get("capabilities", {}).get("drop", []),
                f"{name}: {wname} runs non-root, read-only, no escalation, no capabilities",
            )
            resources = c.get("resources", {})
            check(
                {"cpu", "memory"} <= set(resources.get("requests", {}))
                and {"cpu", "memory"} <= set(resources.get("limits", {})),
                f"{name}: {wname} has CPU and memory requests and limits",
            )
            check(
                "readinessProbe" in c and "livenessProbe" in c,
                f"{name}: {wname} has readiness and liveness probes",
            )
            image = c.get("image", "")
            service = service_of_image(image)
            pinned = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            check(pinned, f"{name}: {wname} image {image} has a pinned tag")
            if service in ("ticket-api", "gateway"):
                allowed = env_names(service)
                unknown = sorted(set(k8s_env(c, configmaps)) - allowed)
                check(not unknown, f"{name}: {wname} sets only {service} settings", ", ".join(unknown))
        if workload["kind"] == "Deployment":
            check(
                "topologySpreadConstraints" in spec,
                f"{name}: {wname} spreads its pods across nodes",
            )

    for d in deployments:
        for c in containers(d):
            service = service_of_image(c.get("image"))
            grace = int(d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30))
            if service == "gateway":
                window_ms = k8s_value(c, configmaps, "KANBAN_GATEWAY__DRAIN_WINDOW_MS")
                window = int(window_ms or default_of("gateway", "drain_window_ms")) / 1000
                need = prestop_seconds(c) + window + GATEWAY_STOP_SECONDS
                check(
                    grace > need,
                    f"{name}: gateway grace {grace}s > preStop {prestop_seconds(c)}s + drain window "
                    f"{window:g}s + stop {GATEWAY_STOP_SECONDS}s",
                )
                from_pod_name = any(
                    e["name"] == "KANBAN_GATEWAY__INSTANCE_ID"
                    and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
                    for e in c.get("env", [])
                )
                if from_pod_name:
                    # A Deployment's pod is named <deployment>-<hash, up to 10>-<5>.
                    longest = len(d["metadata"]["name"]) + 17
                    check(
                        longest <= 32,
                        f"{name}: gateway pod names (up to {longest} characters) fit gateway.instance_id (32)",
                    )
                strategy = d["spec"].get("strategy", {}).get("rollingUpdate", {})
                check(
                    str(strategy.get("maxUnavailable")) == "0",
                    f"{name}: gateway rolling update keeps capacity (maxUnavailable 0)",
                )
            if service == "ticket-api":
                timeout = k8s_value(c, configmaps, "KANBAN_HTTP__SHUTDOWN_TIMEOUT_SECONDS")
                timeout = int(timeout or default_of("ticket-api", "shutdown_timeout_seconds"))
                check(
                    prestop_seconds(c) > 0,
                    f"{name}: ticket-api has a preStop delay ({prestop_seconds(c)}s)",
                )
                check(
                    grace > prestop_seconds(c) + timeout,
                    f"{name}: ticket-api grace {grace}s > preStop {prestop_seconds(c)}s + shutdown {timeout}s",
                )

    for s in services:
        selected = [w for w in workloads(objects) if matches(s["spec"].get("selector"), pod_labels(w))]
        check(bool(selected), f"{name}: Service/{s['metadata']['name']} selects a workload")
        for port in s["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            named = {p.get("name") for w in selected for c in containers(w) for p in c.get("ports", [])}
            numbers = {p["containerPort"] for w in selected for c in containers(w) for p in c.get("ports", [])}
            check(
                target in named or target in numbers,
                f"{name}: Service/{s['metadata']['name']} port {port['name']} reaches a container port",
            )

    service_ports = {s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]} for s in services}
    for ing in by_kind(objects, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                check(
                    backend["port"].get("name") in service_ports.get(backend["name"], set()),
                    f"{name}: Ingress/{ing['metadata']['name']} {p['path']} → Service/{backend['name']} exists",
                )
    paths = {p["path"] for ing in by_kind(objects, "Ingress") for r in ing["spec"]["rules"] for p in r["http"]["paths"]}
    check({"/api", "/socket.io", "/"} <= paths, f"{name}: the Ingress routes /api, /socket.io and /")
    for ing in by_kind(objects, "Ingress"):
        if any(p["path"] == "/socket.io" for r in ing["spec"]["rules"] for p in r["http"]["paths"]):
            timeout = int(ing["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60"))
            check(timeout >= 3600, f"{name}: /socket.io has a long read timeout for WebSockets ({timeout}s)")

    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for o in by_kind(objects, kind):
            selector = (o["spec"].get("selector") or o["spec"].get("podSelector") or {}).get("matchLabels")
            if not selector:
                continue  # an empty selector is every pod
            check(
                any(matches(selector, pod_labels(w)) for w in workloads(objects)),
                f"{name}: {kind}/{o['metadata']['name']} selects a workload",
            )
    pdb_targets = {
        w["metadata"]["name"]
        for o in by_kind(objects, "PodDisruptionBudget")
        for w in workloads(objects)
        if matches(o["spec"]["selector"]["matchLabels"], pod_labels(w))
    }
    check({"ticket-api", "gateway"} <= pdb_targets, f"{name}: ticket-api and gateway have PodDisruptionBudgets")

    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        check(
            any(d["metadata"]["name"] == target for d in deployments),
            f"{name}: HPA/{hpa['metadata']['name']} scales Deployment/{target}",
        )
        kinds = {m["type"] for m in hpa["spec"]["metrics"]}
        check({"Resource", "Pods"} <= kinds, f"{name}: HPA scales on CPU and on a per-pod metric")
        down = hpa["spec"].get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds", 300)
        check(down >= 600, f"{name}: HPA scale-down stabilisation {down}s (>= 10 min, no socket flapping)")
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "Pods":
                check_adapter_metric(name, m["pods"]["metric"]["name"])
        target_d = [d for d in deployments if d["metadata"]["name"] == target]
        check(
            bool(target_d) and "replicas" not in target_d[0]["spec"],
            f"{name}: Deployment/{target} leaves replicas to its HPA",
        )

    for sm in by_kind(objects, "ServiceMonitor"):
        selected = [s for s in services if matches(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        names = sorted(s["metadata"]["name"] for s in selected)
        check(
            {"ticket-api", "gateway"} <= set(names),
            f"{name}: ServiceMonitor/{sm['metadata']['name']} selects the ticket-api and gateway Services",
            f"selects {names}",
        )
        for ep in sm["spec"]["endpoints"]:
            check(
                all(ep["port"] in service_ports[s] for s in names),
                f"{name}: ServiceMonitor port {ep['port']} exists on every selected Service",
            )

    secret_refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for w in workloads(objects)
        for c in containers(w)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    check(secret_refs == {"kanban-secrets"}, f"{name}: secrets come only from Secret kanban-secrets", str(secret_refs))
    check(not by_kind(objects, "Secret"), f"{name}: no Secret object (no secret values) is committed")


def check_adapter_metric(overlay, metric):
    adapter = yaml.safe_load(read("k8s/prometheus-adapter/values.yaml"))
    rules = adapter["rules"]["custom"]
    names = {r["name"]["as"] for r in rules}
    check(metric in names, f"{overlay}: the HPA metric {metric} has a Prometheus adapter rule")
    for rule in rules:
        series = re.match(r"\s*'?(\w+)", rule["seriesQuery"]).group(1)
        check(
            f"`{series}`" in read("docs/metrics.md"),
            f"{overlay}: the adapter's series {series} is a documented gateway metric (docs/metrics.md)",
        )


# --- docker-compose.yml ----------------------------------------------------------------


def check_compose():
    print("docker-compose.yml:")
    compose = yaml.safe_load(read("docker-compose.yml"))
    services = compose["services"]
    dockerfile_service = {
        "deploy/ticket-api.Dockerfile": "ticket-api",
        "deploy/gateway.Dockerfile": "gateway",
        "deploy/web.Dockerfile": "web",
    }
    instance_ids = {}
    for sname, s in services.items():
        build = s.get("build", {})
        service = dockerfile_service.get(build.get("dockerfile")) if isinstance(build, dict) else None
        image = s.get("image", "")
        if not build:
            tag = image.rsplit("/", 1)[-1]
            check(":" in tag and not tag.endswith(":latest"), f"compose: {sname} image {image} is pinned")
        env = s.get("environment", {}) or {}
        if service in ("ticket-api", "gateway"):
            unknown = sorted(k for k in env if k not in env_names(service))
            check(not unknown, f"compose: {sname} sets only {service} settings", ", ".join(unknown))
            check("healthcheck" in s, f"compose: {sname} has a health check")
        if service == "gateway":
            instance_ids[sname] = env.get("KANBAN_GATEWAY__INSTANCE_ID")
            window = int(env.get("KANBAN_GATEWAY__DRAIN_WINDOW_MS") or default_of("gateway", "drain_window_ms")) / 1000
            grace = duration_seconds(s.get("stop_grace_period", "10s"))
            check(
                grace > window + GATEWAY_STOP_SECONDS,
                f"compose: {sname} stop_grace_period {grace:g}s > drain window {window:g}s + stop {GATEWAY_STOP_SECONDS}s",
            )
        for port in s.get("ports", []):
            check(
                str(port).startswith("${KANBAN_BIND_ADDRESS:-127.0.0.1}:"),
                f"compose: {sname} publishes {port} on loopback unless KANBAN_BIND_ADDRESS is set",
            )
        for volume in s.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                path = os.path.join(ROOT, source[2:])
                if source.startswith("./deploy/observability/") and not os.path.exists(path):
                    skip(f"compose: {sname} mounts {source}", "written by the observability work, not in this tree yet")
                else:
                    check(os.path.exists(path), f"compose: {sname} mounts {source}, which exists")

    ids = [i for i in instance_ids.values()]
    check(len(ids) == 2 and len(set(ids)) == 2 and all(ids), f"compose: two gateways with distinct instance ids {ids}")
    for dep in ("postgres", "redis"):
        check("ports" not in services[dep], f"compose: {dep} is not published outside the compose network")
    check("appendonly" in " ".join(services["redis"]["command"]), "compose: redis runs with appendonly yes")
    conditions = services["api"]["depends_on"]
    check(
        all(conditions[d]["condition"] == "service_healthy" for d in ("postgres", "redis")),
        "compose: the API waits for healthy Postgres and Redis",
    )

    nginx = read("deploy/compose/nginx.conf")
    upstream_hosts = set(re.findall(r"server ([\w-]+):(\d+)", nginx))
    for host, port in sorted(upstream_hosts):
        s = services.get(host)
        exposed = {"api": "8080", "web": "8080"}.get(host, "3000")
        check(s is not None and port == exposed, f"compose nginx: upstream {host}:{port} is a compose service")
    for sname, instance in instance_ids.items():
        target = re.search(rf'"~\^{instance}~"\s+(\w+);', nginx)
        check(
            target is not None
            and re.search(rf"upstream {target.group(1)} \{{ server {sname}:3000; \}}", nginx) is not None,
            f"compose nginx: sids prefixed {instance}~ are routed to {sname}",
        )


def duration_seconds(text):
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(ms|s|m|h)", str(text)):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_dockerfiles():
    print("Dockerfiles:")
    for service in ("ticket-api", "gateway", "web"):
        path = f"deploy/{service}.Dockerfile"
        text = read(path)
        stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))
        for image in re.findall(r"^FROM\s+(\S+)", text, re.M):
            if image in stages:
                continue
            tag = image.rsplit("/", 1)[-1]
            check(":" in tag and not tag.endswith(":latest"), f"{path}: FROM {image} is tagged")
        check("HEALTHCHECK" in text and "/healthz" in (text + read_healthcheck(service)), f"{path}: HEALTHCHECK on /healthz")
        check(re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.M) is not None, f"{path}: runs as a non-root user")
        check("org.opencontainers.image.revision" in text, f"{path}: OCI labels with the revision")
        if service in ("ticket-api", "gateway"):
            unknown = sorted(set(re.findall(r"\b(KANBAN_[A-Z_]+__[A-Z_]+)=", text)) - env_names(service))
            check(not unknown, f"{path}: ENV names are {service} settings", ", ".join(unknown))
            check("ENV KANBAN_GIT_REVISION" in text, f"{path}: passes KANBAN_GIT_REVISION to the build")


def check_dockerignore():
    print(".dockerignore:")
    patterns = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
    for needed in ("target/", "node_modules/", ".dev/", ".env"):
        check(
            any(p.rstrip("/").endswith(needed.rstrip("/")) for p in patterns),
            f".dockerignore keeps {needed} out of the build context",
        )


def read_healthcheck(service):
    # The Rust images probe through `--healthcheck`, whose path is fixed in kanban-telemetry.
    if service == "web":
        return ""
    return read("shared/telemetry/src/healthcheck.rs")


def check_stop_time():
    print("gateway stop time:")
    startup = read("services/gateway/src/startup.rs")
    for source in STOP_TIME_SOURCES:
        check(source in startup, f"startup.rs still has `{source}` (GATEWAY_STOP_SECONDS = {GATEWAY_STOP_SECONDS})")


def probe_paths(overlays):
    """(service, path) of every probe and health check in compose and the overlays."""
    found = set()
    for path in overlays:
        for w in workloads(load_overlay(path)):
            for c in containers(w):
                service = service_of_image(c.get("image"))
                if not service:
                    continue
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    http = c.get(probe, {}).get("httpGet")
                    if http:
                        found.add((service, http["path"]))
    for service in ("ticket-api", "gateway"):
        found.add((service, "/healthz"))  # --healthcheck, the images' HEALTHCHECK
    found.add(("web", "/healthz"))  # the web image's HEALTHCHECK
    return sorted(found)


def main():
    command, overlays = sys.argv[1], sys.argv[2:]
    if command == "probes":
        for service, path in probe_paths(overlays):
            print(service, path)
        return 0
    check_dockerfiles()
    check_dockerignore()
    check_compose()
    check_stop_time()
    for overlay in overlays:
        check_overlay(overlay)
    print(f"consistency checks: {results['passed']} ok, {results['failed']} failing")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
