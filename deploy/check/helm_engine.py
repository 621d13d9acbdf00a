"""Two ways to run Helm's own lint and render code: the `helm` CLI when one is on PATH, else the
Helm v4 Go SDK compiled into helm-python-sdk's shared library. Both return the same shapes, so
the chart checks do not care which one ran.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

# Declared, intentionally not vendored (the brief: no vendored charts). Fetched by
# `helm dependency update` only when nats.enabled / redis.enabled is turned on.
EXPECTED_WARNINGS = ("chart directory is missing these dependencies",)


class LintResult:
    def __init__(self, errors: list[str], warnings: list[str]):
        self.errors = errors
        self.unexpected_warnings = [w for w in warnings if not w.startswith(EXPECTED_WARNINGS)]


class SdkEngine:
    def __init__(self, chart: Path, kube_version: str):
        import helm_python

        self._helm = helm_python
        self.chart = chart
        self.kube_version = kube_version
        self.name = (f"no helm CLI on PATH (no Linux helm binary in Debian, PyPI or npm); using the Helm "
                     f"{helm_python.helm_sdk_version()} engine from helm-python-sdk {helm_python.__version__}")

    def lint(self, values: dict | None) -> LintResult:
        report = self._helm.lint(str(self.chart), values, kube_version=self.kube_version)
        errors = [m["error"].strip() for m in report["messages"] if m["severity"] >= 3]
        warnings = [m["error"].strip() for m in report["messages"] if m["severity"] == 2]
        return LintResult(errors, warnings)

    def render(self, values: dict | None, release: str, namespace: str) -> dict[str, str]:
        chart = self._helm.Chart.load(str(self.chart))
        return chart.render(values, name=release, namespace=namespace, is_install=True)

    def rejects(self, values: dict) -> str | None:
        """The error Helm gives for these values, or None when it renders them."""
        try:
            self.render(values, "negative", "default")
        except self._helm.HelmError as err:
            return str(err)
        return None


class CliEngine:
    def __init__(self, binary: str, chart: Path, kube_version: str):
        self.binary = binary
        self.chart = chart
        self.kube_version = kube_version
        version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True)
        self.name = f"helm CLI {version.stdout.strip()} ({binary})"

    def prepare(self) -> str | None:
        """`helm template` refuses a chart whose declared dependencies are not in charts/."""
        if (self.chart / "charts").is_dir():
            return None
        result = subprocess.run([self.binary, "dependency", "build", str(self.chart)],
                                capture_output=True, text=True, timeout=300)
        return None if result.returncode == 0 else result.stderr

    def _run(self, args: list[str], values: dict | None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            extra = []
            if values is not None:
                path = Path(tmp) / "values.yaml"
                path.write_text(yaml.safe_dump(values))
                extra = ["-f", str(path)]
            return subprocess.run([self.binary, *args, *extra], capture_output=True, text=True, timeout=120)

    def lint(self, values: dict | None) -> LintResult:
        result = self._run(["lint", str(self.chart), "--kube-version", self.kube_version.lstrip("v")], values)
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if "[ERROR]" in line]
        if result.returncode != 0 and not errors:
            errors = lines[-3:]
        warnings = [line.split("]", 1)[-1].split(":", 1)[-1].strip() for line in lines if "[WARNING]" in line]
        return LintResult(errors, warnings)

    def render(self, values: dict | None, release: str, namespace: str) -> dict[str, str]:
        result = self._run(["template", release, str(self.chart), "-n", namespace,
                            "--kube-version", self.kube_version.lstrip("v")], values)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        # `helm template` leaves NOTES.txt out; `helm lint` renders it.
        return {"all.yaml": result.stdout}

    def rejects(self, values: dict) -> str | None:
        try:
            self.render(values, "negative", "default")
        except RuntimeError as err:
            return str(err)
        return None


def engine(chart: Path, kube_version: str):
    binary = shutil.which("helm")
    if binary:
        return CliEngine(binary, chart, kube_version)
    return SdkEngine(chart, kube_version)


def documents(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object rendered (NOTES.txt excluded), parsed."""
    docs = []
    for name, text in sorted(rendered.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def notes(rendered: dict[str, str]) -> str:
    return next((t for n, t in rendered.items() if n.endswith("NOTES.txt")), "")
