"""Checks the Dockerfile with BuildKit's own parser (the `dockerfile` package wraps it) and the
.dockerignore against what the build needs: cargo-chef dependency layer before the source,
`--locked`, the three packages, a CARGO_PROFILE build arg, a slim non-root runtime stage.

Usage: dockerfile_check.py REPO_ROOT
"""

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import dockerfile

from report import fail, info, run_checks

PACKAGES = ("gateway", "router-worker", "bot-worker")


def stages(commands) -> dict[str, list]:
    """Instructions grouped by stage name (FROM ... AS name)."""
    grouped: dict[str, list] = {}
    current = None
    for cmd in commands:
        if cmd.cmd == "FROM":
            current = cmd.value[2] if len(cmd.value) == 3 else cmd.value[0]
            grouped[current] = [cmd]
        elif current is not None:
            grouped[current].append(cmd)
    return grouped


def check_build_stage(commands) -> None:
    builder = stages(commands)["builder"]
    kinds = [(c.cmd, " ".join(c.value)) for c in builder]
    cook = next(i for i, (k, v) in enumerate(kinds) if k == "RUN" and "cargo chef cook" in v)
    source = next(i for i, (k, v) in enumerate(kinds) if k == "COPY" and v == ". .")
    build = next(i for i, (k, v) in enumerate(kinds) if k == "RUN" and "cargo build" in v)
    assert cook < source < build, "dependency layer (cargo chef cook) must come before COPY . . and the build"
    for index in (cook, build):
        text = kinds[index][1]
        assert "--locked" in text, f"missing --locked: {text[:80]}"
        assert '--profile "${CARGO_PROFILE}"' in text, f"profile not from the build arg: {text[:80]}"
        for pkg in PACKAGES:
            assert f"-p {pkg}" in text, f"-p {pkg} missing: {text[:80]}"
    assert any(k == "ARG" and v.startswith("CARGO_PROFILE=") for k, v in kinds), "no ARG CARGO_PROFILE"


def check_runtime_stage(commands, root: Path) -> None:
    runtime = list(stages(commands).values())[-1]
    base = runtime[0].value[0]
    assert "-slim" in base or "distroless" in base, f"runtime base {base} is not slim/distroless"
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), f"runtime user {users}"
    copies = [c.value for c in runtime if c.cmd == "COPY" and not c.flags]
    for value in copies:
        for src in value[:-1]:
            assert (root / src).exists(), f"COPY source {src} does not exist"
    cmd = [c.value for c in runtime if c.cmd == "CMD"]
    assert cmd and cmd[-1][0] in PACKAGES, f"default command {cmd} is not one of the binaries"
    entrypoints = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert not entrypoints, "an ENTRYPOINT would stop `docker run IMAGE router-worker`"


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory match covers its tree."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            verdict = not negate
    return verdict


def check_dockerignore(root: Path) -> None:
    lines = [line.strip() for line in (root / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    for heavy in ("target", ".git"):
        assert ignored(heavy, patterns), f"{heavy} is sent to the build context"
    members = json.loads(subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=root, capture_output=True,
        text=True, check=True).stdout)["packages"]
    needed = ["Cargo.toml", "Cargo.lock", "deploy/container-healthcheck.sh"]
    needed += [str(Path(p["manifest_path"]).parent.relative_to(root)) + "/src" for p in members]
    for path in needed:
        assert not ignored(path, patterns), f".dockerignore excludes {path}, which the build needs"


def check_packages_exist(root: Path) -> None:
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=root,
                          capture_output=True, text=True)
    assert meta.returncode == 0, meta.stderr.strip().splitlines()[-1] if meta.stderr else "cargo metadata failed"
    names = {p["name"] for p in json.loads(meta.stdout)["packages"]}
    missing = [p for p in PACKAGES if p not in names]
    assert not missing, f"packages the image builds are not workspace members yet: {missing}"


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    try:
        commands = dockerfile.parse_file(str(root / "Dockerfile"))
    except dockerfile.GoParseError as err:
        fail("dockerfile: BuildKit parser accepts the Dockerfile", str(err))
        return
    info(f"Dockerfile: {len(commands)} instructions parsed by BuildKit's parser")
    run_checks("dockerfile: dependency layer, --locked, CARGO_PROFILE, three packages",
               lambda: check_build_stage(commands))
    run_checks("dockerfile: slim non-root runtime, binary chosen by command",
               lambda: check_runtime_stage(commands, root))
    run_checks("dockerfile: .dockerignore drops target/.git, keeps what the build needs",
               lambda: check_dockerignore(root))
    run_checks("dockerfile: gateway, router-worker, bot-worker are workspace packages",
               lambda: check_packages_exist(root))


if __name__ == "__main__":
    main()
