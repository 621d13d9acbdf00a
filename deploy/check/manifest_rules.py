"""What every rendering of the chart must satisfy, checked on the rendered objects: binaries,
security context, probes, the gateway drain arithmetic, secrets wiring, selectors, HPA/PDB,
Ingress timeouts without stickiness, ServiceMonitors. Each rule raises AssertionError.
"""

import base64
import math

COMPONENTS = ("gateway", "router-worker", "bot-worker")
VALUES_KEY = {"gateway": "gateway", "router-worker": "routerWorker", "bot-worker": "botWorker"}
STICKY_ANNOTATION_HINTS = ("affinity", "session-cookie", "upstream-hash-by")


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component_of(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def deployments(docs: list[dict]) -> dict[str, dict]:
    return {component_of(d): d for d in by_kind(docs, "Deployment").values()}


def container(deploy: dict) -> dict:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deploy['metadata']['name']}: expected one container"
    return containers[0]


def env_of(deploy: dict) -> dict[str, dict]:
    entries = container(deploy).get("env", [])
    names = [e["name"] for e in entries]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"{deploy['metadata']['name']}: duplicate env {duplicates}"
    return {e["name"]: e for e in entries}


def rule_binaries(docs, values) -> None:
    found = deployments(docs)
    assert set(found) == set(COMPONENTS), f"deployments for {sorted(found)}"
    for component, deploy in found.items():
        assert container(deploy)["command"] == [f"/usr/local/bin/{component}"], f"{component} command"


def rule_security(docs, values) -> None:
    for component, deploy in deployments(docs).items():
        pod = deploy["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc.get("runAsNonRoot") is True, f"{component}: pod runAsNonRoot"
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{component}: pod seccomp"
        assert pod.get("automountServiceAccountToken") is False, f"{component}: SA token mounted"
        csc = container(deploy)["securityContext"]
        assert csc.get("allowPrivilegeEscalation") is False, f"{component}: allowPrivilegeEscalation"
        assert csc.get("readOnlyRootFilesystem") is True, f"{component}: readOnlyRootFilesystem"
        assert csc.get("capabilities", {}).get("drop") == ["ALL"], f"{component}: capabilities"
        assert csc.get("runAsNonRoot") is True, f"{component}: container runAsNonRoot"


def rule_probes_ports_resources(docs, values) -> None:
    for component, deploy in deployments(docs).items():
        c = container(deploy)
        port = values[VALUES_KEY[component]]["port"]
        ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        env = env_of(deploy)
        # The gateway's ops listener (/metrics, probes) is a port of its own; a worker's
        # LISTEN_ADDR is its ops listener.
        probe_port = "http"
        if component == "gateway":
            ops = values["gateway"]["opsPort"]
            ports.append({"name": "ops", "containerPort": ops, "protocol": "TCP"})
            assert env["OPS_LISTEN_ADDR"]["value"] == f"0.0.0.0:{ops}", "gateway OPS_LISTEN_ADDR"
            probe_port = "ops"
        assert c["ports"] == ports, f"{component} ports"
        assert env["LISTEN_ADDR"]["value"] == f"0.0.0.0:{port}", f"{component} LISTEN_ADDR"
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
            assert c[probe]["httpGet"] == {"path": path, "port": probe_port}, f"{component} {probe}"
        requests = c["resources"].get("requests", {})
        assert "cpu" in requests and "memory" in requests, f"{component}: requests {requests}"
        assert "memory" in c["resources"].get("limits", {}), f"{component}: no memory limit"


def rule_gateway_drain(docs, values) -> None:
    drain = values["gateway"]["drain"]
    deploy = deployments(docs)["gateway"]
    pod, c, env = deploy["spec"]["template"]["spec"], container(deploy), env_of(deploy)
    pre = drain["preStopSleepSeconds"]
    drain_s = (drain["readinessDelayMs"] + drain["closeWindowMs"]) / 1000
    expected = pre + math.ceil(drain_s) + drain["marginSeconds"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == expected, f"grace {grace} != preStop {pre} + drain {drain_s} + margin"
    assert grace > pre + drain_s, "grace does not outlast preStop + drain"
    assert env["SHUTDOWN_READINESS_DELAY_MS"]["value"] == str(drain["readinessDelayMs"]), "readiness delay env"
    assert env["SHUTDOWN_CLOSE_WINDOW_MS"]["value"] == str(drain["closeWindowMs"]), "close window env"
    hook = c.get("lifecycle", {}).get("preStop")
    if pre:
        assert hook == {"exec": {"command": ["/bin/sleep", str(pre)]}}, f"preStop {hook}"
    else:
        assert hook is None, "preStop present with preStopSleepSeconds 0"
    rolling = deploy["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "gateway rolling update may drop capacity"


def rule_env_and_secrets(docs, values) -> None:
    secrets = by_kind(docs, "Secret")
    jwt = values["auth"]["jwt"]
    for component, deploy in deployments(docs).items():
        env = env_of(deploy)
        for name in ("NATS_URL", "REDIS_URL", "LOG_FORMAT", "RUST_LOG"):
            assert name in env, f"{component}: {name} missing"
        order = list(env)
        for part in ("REDIS_PASSWORD", "REDIS_USERNAME"):
            if f"$({part})" in env["REDIS_URL"].get("value", ""):
                assert order.index(part) < order.index("REDIS_URL"), f"{part} after REDIS_URL"
        if component != "gateway":
            # Routers and bots never verify tokens: no JWT secret or key reaches them.
            jwt_env = [n for n in env if n.startswith("JWT_")]
            assert not jwt_env, f"{component}: {jwt_env} (JWT settings belong to gateways only)"
            mounts = {m["name"] for m in container(deploy).get("volumeMounts", [])}
            assert "jwt-public-key" not in mounts, f"{component}: JWT public key mounted"
        elif jwt["algorithm"] == "HS256":
            ref = env["JWT_SECRET"].get("valueFrom", {}).get("secretKeyRef")
            assert ref, f"{component}: JWT_SECRET not from a Secret"
            if jwt["existingSecret"]:
                assert ref == {"name": jwt["existingSecret"], "key": jwt["existingSecretKey"]}, ref
            else:
                secret = secrets[ref["name"]]
                assert len(base64.b64decode(secret["data"][ref["key"]])) >= 16, "chart JWT secret < 16 bytes"
        else:
            assert "JWT_SECRET" not in env, f"{component}: JWT_SECRET with {jwt['algorithm']}"
            assert env["JWT_ALGORITHM"]["value"] == jwt["algorithm"], f"{component}: JWT_ALGORITHM"
            path = env["JWT_PUBLIC_KEY_FILE"]["value"]
            mounts = {m["mountPath"] for m in container(deploy)["volumeMounts"]}
            assert any(path.startswith(m + "/") for m in mounts), f"{component}: {path} not mounted"
        assert component != "gateway" or "JWT_COOKIE_NAME" in env, "gateway: JWT_COOKIE_NAME missing"
        for name, entry in env.items():
            if name.endswith(("SECRET", "API_KEY", "PASSWORD", "TOKEN", "USERNAME", "NATS_USER")):
                assert "valueFrom" in entry, f"{component}: {name} is inline"
        rule_bus_credentials(component, deploy, values)


def rule_bus_credentials(component: str, deploy: dict, values: dict) -> None:
    """busAuth: each component's NATS / Redis credentials come from its own Secret."""
    env = env_of(deploy)
    auth = values["busAuth"][VALUES_KEY[component]]
    nats = auth["nats"]
    if nats["existingSecret"]:
        for name, key in (("NATS_USER", nats["userKey"]), ("NATS_PASSWORD", nats["passwordKey"]),
                          ("NATS_TOKEN", nats["tokenKey"])):
            if key:
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": nats["existingSecret"], "key": key}, f"{component}: {name} {ref}"
        if nats["credsKey"]:
            path = env["NATS_CREDS_FILE"]["value"]
            mounts = {m["mountPath"] for m in container(deploy)["volumeMounts"]}
            assert any(path.startswith(m + "/") for m in mounts), f"{component}: {path} not mounted"
    redis = auth["redis"]
    if redis["existingSecret"] and not values["redis"]["enabled"] and not values["externalRedis"]["existingSecret"]:
        url = env["REDIS_URL"]["value"]
        assert "$(REDIS_USERNAME):$(REDIS_PASSWORD)@" in url, f"{component}: REDIS_URL {url}"
        for name in ("REDIS_USERNAME", "REDIS_PASSWORD"):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == redis["existingSecret"], name


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def rule_selectors_hpa_pdb(docs, values) -> None:
    deploys = deployments(docs)
    services = {component_of(s): s for s in by_kind(docs, "Service").values()}
    assert set(services) == set(COMPONENTS), f"services {sorted(services)}"
    for component, deploy in deploys.items():
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert matches(deploy["spec"]["selector"]["matchLabels"], labels), f"{component} selector"
        svc = services[component]
        assert matches(svc["spec"]["selector"], labels), f"{component} service selector"
        assert svc["spec"]["ports"][0]["targetPort"] == "http", f"{component} service targetPort"
        hpas = [h for h in by_kind(docs, "HorizontalPodAutoscaler").values() if component_of(h) == component]
        autoscaling = values[VALUES_KEY[component]].get("autoscaling", {})
        if autoscaling.get("enabled"):
            assert len(hpas) == 1, f"{component}: HPA missing"
            assert hpas[0]["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"], "HPA target"
            assert "replicas" not in deploy["spec"], f"{component}: replicas set while HPA owns them"
        else:
            assert not hpas and deploy["spec"]["replicas"] == values[VALUES_KEY[component]]["replicaCount"]
        pdbs = [p for p in by_kind(docs, "PodDisruptionBudget").values() if component_of(p) == component]
        if values[VALUES_KEY[component]]["pdb"]["enabled"]:
            assert len(pdbs) == 1 and matches(pdbs[0]["spec"]["selector"]["matchLabels"], labels), "PDB"


def rule_ingress(docs, values) -> None:
    ingresses = list(by_kind(docs, "Ingress").values())
    if not values["gateway"]["ingress"]["enabled"]:
        assert not ingresses, "ingress rendered while disabled"
        return
    assert len(ingresses) == 1, "one Ingress expected"
    ing = ingresses[0]
    notes = ing["metadata"].get("annotations", {})
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        value = notes.get(f"nginx.ingress.kubernetes.io/{key}")
        assert value and int(value) >= 3600, f"{key} = {value}: WebSockets would be cut"
    sticky = [k for k in notes if any(h in k for h in STICKY_ANNOTATION_HINTS)]
    # Cookie affinity is allowed only scoped to Socket.IO long-polling (docs/socketio.md).
    scoped = notes.get("nginx.ingress.kubernetes.io/session-cookie-path") == "/socket.io"
    assert not sticky or scoped, f"sticky-session annotations not scoped to /socket.io: {sticky}"
    gateway_service = next(s for s in by_kind(docs, "Service").values() if component_of(s) == "gateway")
    for rule in ing["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend == {"name": gateway_service["metadata"]["name"], "port": {"name": "http"}}, backend


def rule_service_monitors(docs, values) -> None:
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    if not values["metrics"]["serviceMonitor"]["enabled"]:
        assert not monitors, "ServiceMonitor rendered while disabled"
        return
    assert {component_of(m) for m in monitors} == set(COMPONENTS), "one ServiceMonitor per component"
    services = list(by_kind(docs, "Service").values())
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        targets = [s for s in services if matches(selector, s["metadata"]["labels"])]
        assert len(targets) == 1, f"{monitor['metadata']['name']} selects {len(targets)} services"
        # The gateway's /metrics is on its ops port only (its "http" port is public).
        port = "ops" if component_of(monitor) == "gateway" else "http"
        assert monitor["spec"]["endpoints"] == [{"port": port, "path": "/metrics",
                                                 "interval": values["metrics"]["serviceMonitor"]["interval"],
                                                 "scrapeTimeout": values["metrics"]["serviceMonitor"]["scrapeTimeout"]}]


def ports_of(rule: dict) -> set:
    return {p["port"] for p in rule.get("ports", [])}


def rule_network_policies(docs, values) -> None:
    """Every component has a NetworkPolicy that denies by default (both policy types) and opens
    only its own ports and peers; the bundled NATS / Redis take clients from this release only."""
    np = values["networkPolicy"]
    policies = list(by_kind(docs, "NetworkPolicy").values())
    if not np["enabled"]:
        assert not policies, "NetworkPolicy rendered while disabled"
        return
    for component, deploy in deployments(docs).items():
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if matches(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert len(mine) == 1, f"{component}: {len(mine)} NetworkPolicies select its pods"
        spec = mine[0]["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"], f"{component}: {spec['policyTypes']}"
        ops = "ops" if component == "gateway" else "http"
        ingress = {frozenset(ports_of(r)): r for r in spec["ingress"]}
        expected_in = {frozenset({ops})} | ({frozenset({"http"})} if component == "gateway" else set())
        assert set(ingress) == expected_in, f"{component}: ingress ports {list(ingress)}"
        assert ingress[frozenset({ops})].get("from", []) == np["monitoringFrom"], f"{component}: ops peers"
        if component == "gateway":
            assert ingress[frozenset({"http"})].get("from", []) == np["ingressFrom"], "gateway: public peers"
        egress = set().union(*(ports_of(r) for r in spec["egress"]))
        expected_out = {53, np["natsPort"], np["redisPort"]} | ({np["llmPort"]} if component == "bot-worker" else set())
        assert egress == expected_out, f"{component}: egress ports {egress} != {expected_out}"
        assert all(r.get("ports") for r in spec["egress"] + spec["ingress"]), f"{component}: a rule open on every port"
    ours = {"app.kubernetes.io/instance"}
    for backbone, port in (("nats", np["natsPort"]), ("redis", np["redisPort"])):
        guarded = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") == backbone]
        if not values[backbone]["enabled"]:
            assert not guarded, f"{backbone}: NetworkPolicy without the bundled {backbone}"
            continue
        assert len(guarded) == 1, f"bundled {backbone}: no NetworkPolicy"
        clients = [r for r in guarded[0]["spec"]["ingress"] if port in ports_of(r)]
        assert clients, f"{backbone}: no client rule on {port}"
        for rule in clients:
            peers = [f["podSelector"]["matchLabels"] for f in rule["from"]]
            assert peers and all(ours <= set(p) for p in peers), f"{backbone}: clients {peers}"
        for rule in guarded[0]["spec"]["ingress"]:
            assert rule.get("from"), f"{backbone}: a rule open to every source"


RULES = [
    ("three Deployments run their own binary", rule_binaries),
    ("pod/container securityContext hardened", rule_security),
    ("ports, probes (/readyz, /healthz) and resources", rule_probes_ports_resources),
    ("gateway preStop + terminationGracePeriodSeconds match the drain", rule_gateway_drain),
    ("env: NATS/Redis/JWT wiring, secrets never inline", rule_env_and_secrets),
    ("selectors, Services, HPA and PDB agree", rule_selectors_hpa_pdb),
    ("Ingress: WebSocket timeouts, no stickiness, gateway backend", rule_ingress),
    ("ServiceMonitors select the Services", rule_service_monitors),
    ("NetworkPolicy per component (and bundled NATS/Redis), deny by default", rule_network_policies),
]
