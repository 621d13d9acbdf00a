"""Production runs R3: the chart's production values (ci/production-values.yaml) set
`jetstream.replicas` to 3 or more, and the rendered production manifests give every component
the same NATS_REPLICAS / LOG_RETAIN_PER_GUILD / LOG_MAX_AGE_SECS (a gateway or bot worker
configured to keep more than the router refuses to start), with NATS_REPLICAS >= 3. With a
compose binary: the R3 compose override (deploy/compose.r3.yml) renders three clustered NATS
nodes and gives every chat component NATS_REPLICAS=3 and all three node URLs.

Usage: replicas_check.py CHART_DIR [REPO_ROOT COMPOSE_BINARY]
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import helm_engine
from report import check, fail, ok

STREAM_ENV = ("NATS_REPLICAS", "LOG_RETAIN_PER_GUILD", "LOG_MAX_AGE_SECS")
MIN_PRODUCTION_REPLICAS = 3
CHAT_SERVICES = ("gateway-1", "gateway-2", "router-worker", "bot-worker")
NATS_NODES = ("nats", "nats-2", "nats-3")


def stream_env(doc: dict) -> dict[str, str]:
    """The stream settings of a Deployment's containers, as NAME -> value."""
    found = {}
    for container in doc["spec"]["template"]["spec"]["containers"]:
        for var in container.get("env", []):
            if var["name"] in STREAM_ENV:
                found[var["name"]] = var.get("value")
    return found


def check_compose(root: Path, binary: str) -> None:
    files = ["-f", str(root / "docker-compose.yml"), "-f", str(root / "deploy/compose.r3.yml")]
    env = {**os.environ, "JWT_SECRET": "replicas-check-secret-0123456789abcdef"}
    result = subprocess.run([binary, *files, "config", "--format", "json"], cwd=root, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        fail("R3 compose: docker compose config accepts the override", result.stderr[-500:])
        return
    services = json.loads(result.stdout)["services"]
    for node in NATS_NODES:
        command = services.get(node, {}).get("command") or []
        check(f"R3 compose: {node} runs JetStream in cluster guild-chat",
              "-js" in command and "--cluster" in command and "--routes" in command, f"{command}")
    for name in CHAT_SERVICES:
        env = services.get(name, {}).get("environment") or {}
        urls = (env.get("NATS_URL") or "").split(",")
        check(f"R3 compose: {name} has NATS_REPLICAS=3 and the three node URLs",
              env.get("NATS_REPLICAS") == "3" and len(urls) == len(NATS_NODES), f"{env}")


def main() -> None:
    if len(sys.argv) == 4:
        check_compose(Path(sys.argv[2]).resolve(), sys.argv[3])
    chart = Path(sys.argv[1]).resolve()
    production = yaml.safe_load((chart / "ci/production-values.yaml").read_text())
    replicas = (production.get("jetstream") or {}).get("replicas")
    check(f"R3: production values set jetstream.replicas >= {MIN_PRODUCTION_REPLICAS}",
          isinstance(replicas, int) and replicas >= MIN_PRODUCTION_REPLICAS,
          f"jetstream.replicas is {replicas!r}")
    engine = helm_engine.engine(chart, "v1.27.0")
    if isinstance(engine, helm_engine.CliEngine) and (problem := engine.prepare()):
        fail("R3: helm dependency build", problem)
        return
    try:
        docs = helm_engine.documents(engine.render(production, "chat", "chat"))
    except Exception as err:
        fail("R3: helm template with the production values", str(err))
        return
    deployments = {d["metadata"]["name"]: stream_env(d) for d in docs if d["kind"] == "Deployment"}
    if not deployments:
        fail("R3: the production rendering has Deployments", "none rendered")
        return
    ok(f"R3: rendered {len(deployments)} Deployments with the production values")
    for name, env in deployments.items():
        missing = [k for k in STREAM_ENV if k not in env]
        check(f"R3: {name} sets {', '.join(STREAM_ENV)}", not missing, f"missing {missing}")
        value = env.get("NATS_REPLICAS")
        check(f"R3: {name} runs with NATS_REPLICAS >= {MIN_PRODUCTION_REPLICAS}",
              value is not None and value.isdigit() and int(value) >= MIN_PRODUCTION_REPLICAS,
              f"NATS_REPLICAS={value!r}")
    distinct = {tuple(env.get(k) for k in STREAM_ENV) for env in deployments.values()}
    check("R3: every component has the same stream settings", len(distinct) == 1, f"{distinct}")


if __name__ == "__main__":
    main()
