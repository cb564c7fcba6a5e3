"""Packaging, as users install it: real environments built with uv in temporary directories.

- The CLI installs without Airflow (no extras) and runs a whole pipeline there.
- custval installs into an existing Airflow environment without changing any version Airflow
  resolved: a deployment installs Airflow against its constraints file first, and custval must
  fit around those pins, never up- or downgrade them. Its plugin and DAGs then load there.

One wheel is built per module and reused; uv's cache makes the environments cheap after the first
run (PyPI must be reachable for the first one).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require

pytestmark = pytest.mark.slow

AIRFLOW_DISTRIBUTIONS = ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")
# What an Airflow deployment carries besides Airflow (its providers pull them in, its constraints
# file pins them) and custval needs too: the ranges most likely to clash.
DEPLOYMENT_EXTRAS = ("pandas", "numpy", "pyarrow")


# How uv reports an index it cannot reach (then the test skips locally, fails under CI=true).
_NETWORK_ERRORS = (
    r"dns error|failed to lookup address|connection refused|network is unreachable|timed out"
)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(name: str) -> dict[str, Any]:
    """The package's entry in uv.lock (the version the dev environment and CI use)."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    entries = [p for p in lock["package"] if p["name"] == name]
    assert len(entries) == 1, f"uv.lock holds {len(entries)} entries for {name}"
    return entries[0]


def _released(names: tuple[str, ...]) -> str:
    """When the last file of these locked distributions was uploaded (uv.lock records it)."""
    times = [
        datetime.fromisoformat(f["upload-time"])
        for name in names
        for f in [_locked(name).get("sdist", {}), *_locked(name).get("wheels", [])]
        if "upload-time" in f
    ]
    assert times, f"uv.lock records no upload times for {names}"
    last = max(times).astimezone(UTC) + timedelta(seconds=1)  # rounded up to the second
    return last.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would point a tool at another environment."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX", "UV_PROJECT_ENVIRONMENT")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("CUSTVAL_", "AIRFLOW_", "AIRFLOW__"))
    }
    env["GX_ANALYTICS_ENABLED"] = "False"
    return {**env, **extra}


def _run(
    args: list[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or _clean_env(),
        timeout=timeout,
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, (
        f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _check_online(result: subprocess.CompletedProcess[str], what: str) -> str:
    """`_check` for a command that reads the package index: an unreachable index is a missing
    resource (skipped locally, a failure under CI=true), anything else a failure."""
    offline = re.search(_NETWORK_ERRORS, result.stderr, re.IGNORECASE)
    require(
        result.returncode == 0 or offline is None,
        f"{what}: package index unreachable: {result.stderr.strip()[-500:]}",
    )
    return _check(result, what)


class Env:
    """A virtual environment made by `uv venv`, filled by `uv pip install`."""

    def __init__(self, uv: str, path: Path) -> None:
        self.uv = uv
        self.path = path
        self.python = path / "bin" / "python"
        _check(
            _run([uv, "venv", "--quiet", "--python", sys.executable, path], cwd=path.parent),
            f"uv venv {path}",
        )

    def install(self, *args: str | Path) -> str:
        result = _run(
            [self.uv, "pip", "install", "--python", self.python, *args], cwd=self.path.parent
        )
        return _check_online(result, f"uv pip install {' '.join(map(str, args))}")

    def packages(self) -> dict[str, str]:
        """Every installed distribution (normalized name) and its version."""
        out = _check(
            _run(
                [self.uv, "pip", "list", "--python", self.python, "--format", "json"],
                cwd=self.path.parent,
            ),
            "uv pip list",
        )
        return {_normalize(p["name"]): p["version"] for p in json.loads(out)}

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def _changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {
        name: f"{version} -> {after.get(name, 'removed')}"
        for name, version in sorted(before.items())
        if after.get(name) != version
    }


@pytest.fixture(scope="module")
def uv() -> str:
    path = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in UV
    if not path:
        pytest.fail("uv is not on PATH: the packaging tests build their environments with it")
    return path


@pytest.fixture(scope="module")
def wheel(uv: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """custval's wheel, built once from the checkout."""
    out = tmp_path_factory.mktemp("dist")
    build = _run([uv, "build", "--wheel", "--quiet", "--out-dir", out, REPO], cwd=out)
    _check_online(build, "uv build --wheel")
    (built,) = out.glob("custval-*.whl")
    return built


def _third_party_imports_outside_orchestration() -> list[str]:
    """Top-level modules the package imports anywhere (function-level imports too), Airflow's
    edge excluded: each must be importable in a CLI-only install."""
    names: set[str] = set()
    for path in (REPO / "pipelines").rglob("*.py"):
        if "orchestration" in path.relative_to(REPO / "pipelines").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names - set(sys.stdlib_module_names) - {"pipelines", "__future__"} - EXTRAS_ONLY)


# Imported only for an s3:// warehouse, from the `s3` extra; without it such a warehouse is a
# one-line error naming the extra (checked below).
EXTRAS_ONLY = {"boto3", "botocore"}


_CLI_IMPORTS = """
import importlib, importlib.metadata as md, importlib.util, json, pkgutil, sys
import pipelines
modules = [m.name for m in pkgutil.walk_packages(pipelines.__path__, "pipelines.")
           if not m.name.startswith("pipelines.orchestration") and m.name != "pipelines.__main__"]
for name in modules:
    importlib.import_module(name)
import pipelines.cli
print(json.dumps({
    "file": pipelines.__file__,
    "modules": len(modules),
    "airflow_imported": sorted(m for m in sys.modules if m.split(".")[0] == "airflow"),
    "missing": [m for m in json.loads(sys.argv[1]) if importlib.util.find_spec(m) is None],
    "plugins": [e.value for e in md.entry_points(group="airflow.plugins") if e.name == "custval"],
}))
"""


def test_cli_installs_and_runs_without_airflow(uv: str, wheel: Path, tmp_path: Path) -> None:
    env = Env(uv, tmp_path / "venv")
    env.install(wheel)

    installed = env.packages()
    assert "custval" in installed
    assert not [d for d in AIRFLOW_DISTRIBUTIONS if d in installed], (
        "a plain `pip install custval` must not install Airflow: "
        f"{ {d: installed[d] for d in AIRFLOW_DISTRIBUTIONS if d in installed} }"
    )

    # Every module outside the Airflow edge imports without Airflow, and every third-party
    # module the code names is installed: a dependency Airflow used to bring in transitively
    # (pydantic-settings, through FastAPI) shows up here.
    imports = _third_party_imports_outside_orchestration()
    report = json.loads(
        _check(
            _run([env.python, "-c", _CLI_IMPORTS, json.dumps(imports)], cwd=tmp_path),
            "importing the package without Airflow",
        ).splitlines()[-1]
    )
    assert Path(report["file"]).is_relative_to(env.path), report["file"]  # not the checkout
    assert report["modules"] > 50
    assert report["airflow_imported"] == []
    assert report["missing"] == [], f"imported by pipelines/ but not installed: {report['missing']}"
    # The plugin's entry point is declared (Airflow finds it where Airflow is installed); nothing
    # but Airflow loads it, so it costs a CLI-only install nothing.
    assert report["plugins"] == ["pipelines.orchestration.plugin:CustvalPlugin"]

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = _run([env.bin("custval"), "--version"], cwd=tmp_path)
    assert _check(version, "custval --version").strip() == f"custval {project['version']}"
    helptext = _check(_run([env.bin("custval"), "--help"], cwd=tmp_path), "custval --help")
    for command in ("run", "backfill", "demo", "generate", "report"):
        assert re.search(rf"^\W*{command}\b", helptext, re.MULTILINE), (command, helptext)

    # A whole run: generate, extract, validate (GX), marts (DuckDB), models, publish, report.
    orders = 2_000
    demo = _run(
        [env.bin("custval"), "demo", "--dir", tmp_path / "demo", "--orders", str(orders)],
        cwd=tmp_path,
    )
    _check(demo, "custval demo")
    (manifest_path,) = (tmp_path / "demo" / "warehouse" / "runs").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "success", manifest.get("warnings")
    counts = manifest["counts"]
    assert counts["rows_in"] == orders
    assert counts["rows_in"] == (
        counts["rows_accepted"] + counts["rows_quarantined"] + counts["rows_duplicate"]
    )
    assert manifest["versions"]["apache-airflow"] is None
    assert manifest["versions"]["custval"] == project["version"]
    assert (tmp_path / "demo" / "warehouse" / "marts" / "customer_rfm").is_dir()

    # An s3:// warehouse without the s3 extra: one line naming it, before any request is made.
    (source,) = (tmp_path / "demo").glob("*.csv")
    s3 = _run(
        [env.bin("custval"), "run", "--source", source, "--as-of", "2024-01-01", "--warehouse",
         "s3://some-bucket/custval"],
        cwd=tmp_path,
    )  # fmt: skip
    assert s3.returncode == 1 and "Traceback" not in s3.stderr, s3.stderr[-2000:]
    assert "needs boto3, which custval's s3 extra installs" in s3.stderr
    assert len(s3.stderr.strip().splitlines()) == 1


_AIRFLOW_LOADS = """
import json, sys
import pipelines
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag

timetables = sorted(plugins_manager.get_timetables_plugins())
import pipelines.orchestration.plugin, pipelines.orchestration.tasks
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "file": pipelines.__file__,
    "timetables": timetables,
    "plugin_errors": plugins_manager.get_import_errors(),
    "dag_ids": sorted(bag.dag_ids),
    "dag_errors": bag.import_errors,
}))
"""


def _airflow_env(uv: str, path: Path, *requirements: str, as_of: str | None = None) -> Env:
    env = Env(uv, path)
    env.install(*requirements, *(["--exclude-newer", as_of] if as_of else []))
    return env


def _install_custval_keeps_pins(env: Env, wheel: Path) -> dict[str, str]:
    before = env.packages()
    env.install(wheel)
    after = env.packages()
    changed = _changed(before, after)
    assert not changed, (
        "installing custval changed versions the Airflow environment had resolved "
        f"(widen custval's range for these): {changed}"
    )
    assert "custval" in after
    return after


def _assert_plugin_and_dags_load(env: Env, tmp_path: Path) -> None:
    home = tmp_path / "airflow-home"
    home.mkdir()
    airflow_env = _clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    result = _run(
        [env.python, "-c", _AIRFLOW_LOADS, REPO / "dags"],
        cwd=tmp_path,
        env=airflow_env,
    )
    report = json.loads(_check(result, "loading the plugin and DAGs").splitlines()[-1])
    assert Path(report["file"]).is_relative_to(env.path), report["file"]  # the installed wheel
    assert report["plugin_errors"] == {}
    assert "pipelines.orchestration.timetable.SettledDailyTimetable" in report["timetables"]
    assert report["dag_errors"] == {}
    assert {"custval_nightly", "custval_bi_refresh"} <= set(report["dag_ids"])


def test_installs_into_airflow_without_changing_its_versions(
    uv: str, wheel: Path, tmp_path: Path
) -> None:
    """Airflow first (the version uv.lock pins, nothing else), then custval into it."""
    airflow = _locked("apache-airflow")["version"]
    env = _airflow_env(uv, tmp_path / "venv", f"apache-airflow=={airflow}")
    assert env.packages()["apache-airflow"] == airflow

    _install_custval_keeps_pins(env, wheel)
    _assert_plugin_and_dags_load(env, tmp_path)


def test_installs_into_airflow_deployment_as_released(uv: str, wheel: Path, tmp_path: Path) -> None:
    """An Airflow deployment as its constraints file pins it: Airflow's constraints are the
    newest versions resolvable when it was released, so resolve Airflow and the libraries its
    providers bring (pandas, numpy, pyarrow) as of Airflow's upload time, then add custval."""
    locked = _locked("apache-airflow")
    released = _released(AIRFLOW_DISTRIBUTIONS)
    env = _airflow_env(
        uv,
        tmp_path / "venv",
        f"apache-airflow=={locked['version']}",
        *DEPLOYMENT_EXTRAS,
        as_of=released,
    )
    assert set(DEPLOYMENT_EXTRAS) <= set(env.packages())

    _install_custval_keeps_pins(env, wheel)
