"""Validates the Helm chart: values.schema.json is a valid strict schema that accepts the default
and production values and rejects broken ones; Helm's own lint and render accept the chart;
every rendering passes the Kubernetes OpenAPI schemas (kubernetes-validate, strict) and the
manifest rules; the chart README documents every value.

Usage: chart_check.py CHART_DIR
"""

import copy
import json
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

import helm_engine
import manifest_rules
from report import check, fail, info, ok, run_checks

KUBE_VERSIONS = ("1.27.0", "1.37.0")  # Chart.yaml kubeVersion floor, newest schemas shipped
CRD_KINDS = {"ServiceMonitor"}
RELEASE, NAMESPACE = "chat", "chat"

VARIANTS = {
    "public-key JWT (ES256)": {"auth": {"jwt": {"algorithm": "ES256", "publicKey": {"existingSecret": "jwt-pub"}}}},
    "bundled nats + redis subcharts": {"nats": {"enabled": True}, "redis": {"enabled": True}},
    "dev login, origins, LLM key, no preStop": {
        "auth": {"devLogin": True, "jwt": {"secret": "a-long-enough-test-secret"}},
        "gateway": {"allowedOrigins": ["https://a.example", "http://localhost:8080"],
                    "drain": {"preStopSleepSeconds": 0}},
        "botWorker": {"llm": {"baseUrl": "https://llm.example/v1", "model": "m", "apiKey": "k"}}},
    "bus credentials per component, NATS TLS, Redis ACL users": {
        "gateway": {"trustedProxies": ["10.0.0.0/8"]},
        "externalRedis": {"url": "rediss://redis.internal:6380"},
        "busAuth": {
            "gateway": {"nats": {"existingSecret": "gw-nats"}, "redis": {"existingSecret": "gw-redis"}},
            "routerWorker": {"nats": {"existingSecret": "rt-nats", "userKey": "", "passwordKey": "",
                                      "credsKey": "router.creds"},
                             "redis": {"existingSecret": "rt-redis"}},
            "botWorker": {"nats": {"existingSecret": "bot-nats", "userKey": "", "passwordKey": "",
                                   "tokenKey": "token"}},
            "natsTls": {"existingSecret": "nats-tls", "certKey": "tls.crt", "keyKey": "tls.key"}}},
    "no NetworkPolicies": {"networkPolicy": {"enabled": False}},
}

# Each must be refused by the JSON schema and by Helm.
SCHEMA_REJECTS = {
    "unknown top-level key": {"gatewy": {}},
    "misspelt nested key": {"gateway": {"drain": {"readinessDelayMS": 5000}}},
    "algorithm outside the enum": {"auth": {"jwt": {"algorithm": "HS512"}}},
    "HS256 secret under 16 bytes": {"auth": {"jwt": {"secret": "short"}}},
    "RS256 without a public key Secret": {"auth": {"jwt": {"algorithm": "RS256"}}},
    "log format outside the enum": {"logging": {"format": "xml"}},
    "origin with a path": {"gateway": {"allowedOrigins": ["https://chat.example.com/app"]}},
    "replicaCount as a string": {"gateway": {"replicaCount": "2"}},
    "PDB with neither bound": {"gateway": {"pdb": {"minAvailable": None, "maxUnavailable": None}}},
    "Ingress pathType outside the enum": {
        "gateway": {"ingress": {"hosts": [{"host": "x", "paths": [{"path": "/", "pathType": "Any"}]}]}}},
    "Redis URL with an http scheme": {"externalRedis": {"url": "http://redis:6379"}},
}
# Schema-valid, refused by a template guard.
TEMPLATE_REJECTS = {
    "no NATS at all": {"externalNats": {"url": ""}},
    "no Redis at all": {"externalRedis": {"url": ""}},
    "Redis ACL user with credentials already in the URL": {
        "externalRedis": {"url": "redis://u:p@redis:6379"},
        "busAuth": {"gateway": {"redis": {"existingSecret": "gw-redis"}}}},
    "HPA minReplicas > maxReplicas": {
        "gateway": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
}


def merge(base: dict, overlay: dict) -> dict:
    """Helm's coalescing for user values: maps merge, everything else replaces, null deletes."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def schema_errors(validator, values: dict) -> list[str]:
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def check_schema(chart: Path, defaults: dict, overlays: dict[str, dict]):
    schema = json.loads((chart / "values.schema.json").read_text())
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        fail("schema: values.schema.json is a valid draft-07 schema", err.message)
        return None
    ok("schema: values.schema.json is a valid draft-07 schema")
    validator = jsonschema.Draft7Validator(schema)
    for name, overlay in overlays.items():
        errors = schema_errors(validator, merge(defaults, overlay))
        check(f"schema: {name} values validate (jsonschema)", not errors, "\n".join(errors[:5]))
    return validator


def check_rejections(validator, engine, defaults: dict) -> None:
    for name, overlay in SCHEMA_REJECTS.items():
        schema_says = schema_errors(validator, merge(defaults, overlay)) if validator else ["no schema"]
        helm_says = engine.rejects(overlay)
        check(f"reject: {name} (jsonschema and Helm)", bool(schema_says) and bool(helm_says),
              f"jsonschema errors={len(schema_says)}, helm error={helm_says!r}")
    for name, overlay in TEMPLATE_REJECTS.items():
        helm_says = engine.rejects(overlay)
        check(f"reject: {name} (template guard)", bool(helm_says), "Helm rendered it")


def check_lint(engine, name: str, overlay: dict | None) -> None:
    result = engine.lint(overlay)
    problems = result.errors + [f"warning: {w}" for w in result.unexpected_warnings]
    check(f"helm lint: {name} values", not problems, "\n".join(problems))


def kube_validate(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                problems.append(f"{doc['kind']}/{doc['metadata']['name']} @{version}: {err.message}")
    return problems


def check_rendering(engine, name: str, defaults: dict, overlay: dict | None) -> None:
    try:
        rendered = engine.render(overlay, RELEASE, NAMESPACE)
    except Exception as err:
        fail(f"helm template: {name}", str(err))
        return
    docs = helm_engine.documents(rendered)
    kinds = sorted({d["kind"] for d in docs})
    ok(f"helm template: {name} ({len(docs)} objects: {', '.join(kinds)})")
    problems = kube_validate(docs)
    check(f"kubernetes schemas {'/'.join(KUBE_VERSIONS)} strict: {name}", not problems, "\n".join(problems[:5]))
    values = merge(defaults, overlay or {})
    for rule_name, rule in manifest_rules.RULES:
        run_checks(f"{rule_name}: {name}", lambda rule=rule: rule(docs, values))
    notes = helm_engine.notes(rendered)
    if notes:
        check(f"NOTES.txt renders: {name}", "terminationGracePeriodSeconds=" in notes, notes[:200])


# Objects documented as one row (their shape is Kubernetes' or a subchart's, not ours).
WHOLE_OBJECTS = {"annotations", "behavior", "resources", "probes", "seccompProfile", "capabilities", "config"}


def leaf_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in WHOLE_OBJECTS:
            paths.extend(leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def check_readme(chart: Path, defaults: dict) -> None:
    readme = (chart / "README.md").read_text()
    documented = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", readme, re.M))
    missing = [p for p in leaf_paths(defaults) if p not in documented]
    check("README: every value in values.yaml has a row in the values table", not missing,
          f"undocumented: {missing}")
    stale = sorted(p for p in documented if not any(p == q or q.startswith(p + ".") for q in leaf_paths(defaults)))
    check("README: the values table names no value that does not exist", not stale, f"stale: {stale}")


# Leaf keys that hold a credential value (names of Secrets and of keys in them are fine).
CREDENTIAL_KEYS = {"secret", "apikey", "password", "token", "jwtsecret"}


def committed_credentials(values, path: str = "") -> list[str]:
    found = []
    if isinstance(values, dict):
        for key, value in values.items():
            here = f"{path}.{key}" if path else key
            if isinstance(value, str) and value and key.lower() in CREDENTIAL_KEYS:
                found.append(here)
            found.extend(committed_credentials(value, here))
    elif isinstance(values, list):
        for i, item in enumerate(values):
            found.extend(committed_credentials(item, f"{path}[{i}]"))
    return found


def check_no_committed_secrets(chart: Path) -> None:
    """Issue #15: the chart's committed values hold no credential, only Secret references."""
    for file in [chart / "values.yaml", *sorted((chart / "ci").glob("*.yaml"))]:
        found = committed_credentials(yaml.safe_load(file.read_text()))
        check(f"no credential value committed: {file.relative_to(chart.parent)}", not found, f"set: {found}")


def main() -> None:
    chart = Path(sys.argv[1]).resolve()
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    production = yaml.safe_load((chart / "ci/production-values.yaml").read_text())
    engine = helm_engine.engine(chart, "v" + KUBE_VERSIONS[0])
    info(f"helm: {engine.name}")
    if isinstance(engine, helm_engine.CliEngine):
        problem = engine.prepare()
        if problem:
            fail("helm dependency build (declared subcharts, needed by helm template)", problem)
            return
    validator = check_schema(chart, defaults, {"default": {}, "production": production, **VARIANTS})
    check_lint(engine, "default", None)
    check_lint(engine, "production", production)
    for name, overlay in {"default": None, "production": production, **VARIANTS}.items():
        check_rendering(engine, name, defaults, overlay)
    check_rejections(validator, engine, defaults)
    check_no_committed_secrets(chart)
    check_readme(chart, defaults)


if __name__ == "__main__":
    main()
