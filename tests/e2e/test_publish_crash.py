"""kill -9 during publish: at every file operation (a first publish: at each kind), at random.

A run's publish and manifest stages run in a child process holding a real lease; the child
is SIGKILLed at the n-th file operation (`pipelines/storage/faults.py`) or after a random delay. After
each kill the test checks what a reader sees -- every visible table, the quarantine and the
manifest come from one and the same run's version, and the row counts agree with that
manifest -- then that start-up recovery heals the warehouse by itself: no unpublished version
or work directory left, the dead run's lease taken over without `custval unlock`, and a
complete snapshot. The last trial ends with a real `custval run` on the healed warehouse.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO
from warehouse_helper import operation_boundaries

from pipelines.context import RunContext
from pipelines.run.pipeline import begin, run_stage
from pipelines.storage import locking, snapshots
from pipelines.storage.recovery import recover_warehouse

NO_PREDICTIONS = "predictive:\n  enabled: false\n"
TABLES = (
    "cohort_retention",
    "customer_clv",
    "customer_rfm",
    "kpi_summary",
    "model_backtest",
    "model_fit",
    "segment_summary",
)

# The rest of run B: its lease (held by this process), publish, manifest and commit.
CHILD = """
import json, sys
from pipelines.context import RunContext
from pipelines.run.pipeline import Leases, run_stage
ctx = RunContext.from_dict(json.loads(sys.argv[1]))
leases = Leases(ctx)
leases.take([ctx.snapshot_date])
run_stage("publish", ctx)
run_stage("manifest", ctx)
leases.release()
"""


def visible_state(wh: Path, snapshot: date) -> dict[str, str | None]:
    """Which version each visible file of the snapshot comes from, at one moment.

    The files are opened one after another; when the snapshot's `current` link changed while
    they were being opened, the read spans a switch and says nothing about one moment: it is
    read again (the check a seqlock reader makes).
    """
    current = snapshots.snapshot_root(wh, snapshot) / snapshots.CURRENT
    for _ in range(100):
        before = _readlink(current)
        state = _open_all(wh, snapshot)
        if _readlink(current) == before:
            return state
    raise AssertionError("the snapshot kept switching while it was read")


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _open_all(wh: Path, snapshot: date) -> dict[str, str | None]:
    part = f"snapshot_date={snapshot.isoformat()}"
    paths = {t: wh / "marts" / t / part / "part-0.parquet" for t in TABLES}
    paths["quarantine"] = wh / "quarantine" / "orders" / part / "part-0.parquet"
    paths["manifest"] = wh / "runs" / part / "manifest.json"
    out: dict[str, str | None] = {}
    for name, path in paths.items():
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            out[name] = None
            continue
        try:  # the file this descriptor really opened, whatever the links say a moment later
            real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        finally:
            os.close(fd)
        version = real.relative_to(wh / "_snapshots" / part).parts[0]
        out[name] = version
    return out


def assert_consistent(wh: Path, snapshot: date) -> str | None:
    """One version behind everything visible, agreeing with its manifest; returns its run."""
    state = visible_state(wh, snapshot)
    versions = {v for v in state.values() if v is not None}
    assert len(versions) <= 1, f"a mixed snapshot: {state}"
    if state["manifest"] is None:
        return None
    assert all(state[t] is not None for t in TABLES), (
        f"the manifest is visible but not every table: {state}"
    )
    manifest = json.loads(
        (wh / "runs" / f"snapshot_date={snapshot.isoformat()}" / "manifest.json").read_text()
    )
    assert snapshots.owner_of(state["manifest"]) == manifest["run_id"]
    for table in TABLES:
        frame = pl.read_parquet(Path(manifest["tables"][table]["path"]))
        assert frame.height == manifest["tables"][table]["rows"], table
    return str(manifest["run_id"])


def assert_pinned_read(wh: Path, snapshot: date) -> None:
    """Read the manifest, then every table from the version it names: whole, and as it says."""
    part = f"snapshot_date={snapshot.isoformat()}"
    manifest = json.loads((wh / "runs" / part / "manifest.json").read_text())
    version = wh / "_snapshots" / part / manifest["version"]
    for table in TABLES:
        frame = pl.read_parquet(version / "marts" / table / "part-0.parquet")  # kept while pinned
        assert frame.height == manifest["tables"][table]["rows"], table


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A warehouse where run A published snapshot D, and run B has built D up to its marts."""
    from pipelines.run.pipeline import run_all
    from pipelines.tools.generate import simulate_orders, write_orders

    base = tmp_path_factory.mktemp("crash")
    frame = simulate_orders(3_000, seed=5, start=date(2024, 1, 1), days=200)
    source = write_orders(frame, base / "orders.csv", "csv")
    snapshot = frame["order_ts"].max().date()  # type: ignore[union-attr]
    config = base / "cfg.yaml"
    config.write_text(NO_PREDICTIONS)
    wh = base / "wh"
    first = run_all(
        RunContext.create(
            source=str(source), snapshot_date=snapshot, warehouse=wh, config_path=str(config)
        )
    )
    # Run B for the same snapshot: stages up to the marts, in a copy of the warehouse per trial.
    new_wh = base / "wh_new"  # and a warehouse where D has never been published
    contexts = {}
    for name, where in (("rerun", wh), ("new", new_wh)):
        ctx = RunContext.create(
            source=str(source),
            snapshot_date=snapshot,
            warehouse=where,
            config_path=str(config),
            run_id=f"B-{name}",
        )
        leases = begin(ctx)
        for stage in ("extract", "validate", "stage", "marts"):
            run_stage(stage, ctx)
        leases.release()
        contexts[name] = ctx
    return {
        "base": base,
        "snapshot": snapshot,
        "first_run": first["run_id"],
        "contexts": contexts,
        "config": config,
        "source": source,
    }


def _trial_copy(prepared: dict[str, object], scenario: str, trial: Path) -> RunContext:
    ctx: RunContext = prepared["contexts"][scenario]  # type: ignore[index]
    shutil.copytree(ctx.warehouse, trial, symlinks=True)
    for result in (trial / "_work").rglob(
        "*.json"
    ):  # stage results name their files by absolute path
        result.write_text(result.read_text().replace(str(ctx.warehouse), str(trial)))
    return RunContext.from_dict({**ctx.to_dict(), "warehouse": str(trial)})


def _child(ctx: RunContext, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(ctx.to_dict())],
        env={**os.environ, **env},
        cwd=REPO,
    )


def _operations(prepared: dict[str, object], scenario: str, tmp: Path) -> list[str]:
    ctx = _trial_copy(prepared, scenario, tmp / f"trace-{scenario}")
    trace = tmp / f"trace-{scenario}.txt"
    assert _child(ctx, {"CUSTVAL_FAULT_TRACE": str(trace)}).wait(timeout=120) == 0
    return [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]


def _heal_and_check(trial: Path, snapshot: date, scenario: str, first_run: str) -> str | None:
    before = assert_consistent(trial, snapshot)
    if scenario == "rerun":
        assert before in (first_run, "B-rerun"), before  # the old snapshot whole, or the new one
    else:
        assert before in (None, "B-new"), before
    recover_warehouse(trial)
    after = assert_consistent(trial, snapshot)
    assert after == before or (before is None and after == "B-new"), (before, after)
    # nothing left that no run will publish, and no work directory of the dead run
    root = snapshots.snapshot_root(trial, snapshot)
    versions = sorted(p.name for p in root.iterdir() if "@" in p.name) if root.is_dir() else []
    current = snapshots.current_version(trial, snapshot)
    kept = {current.name if current else None}
    if (root / snapshots.PREVIOUS).is_symlink():  # the replaced version, kept for pinned readers
        kept.add(os.readlink(root / snapshots.PREVIOUS))
    assert set(versions) <= kept and (current is None or current.name in versions), (versions, kept)
    entries = list(root.iterdir()) if root.is_dir() else []
    assert not [
        p.name
        for p in entries
        if p.name.endswith(".tmp") and p.name.startswith((".current", ".previous"))
    ]
    assert not (root / snapshots.JOURNAL).exists()
    assert not (trial / "_work" / f"B-{scenario}").exists()
    # the dead run's lease is taken over without `custval unlock`
    locking.acquire(trial, snapshot, "next-run", wait_seconds=0)
    locking.release(trial, snapshot, "next-run")
    return after


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["rerun", "new"])
def test_kill_at_every_file_operation_of_publish(
    prepared: dict[str, object], tmp_path: Path, scenario: str
) -> None:
    """A rerun is killed at every file operation; a first publish of the date at each kind of
    operation's first and last in a row (the moments in between are the same states)."""
    operations = _operations(prepared, scenario, tmp_path)
    assert {"commit.switch", "publish.table", "commit.journal"} <= set(operations), operations
    snapshot: date = prepared["snapshot"]  # type: ignore[assignment]
    moments = (
        list(range(1, len(operations) + 1))
        if scenario == "rerun"
        else operation_boundaries(operations)
    )
    outcomes = []
    for k in moments:
        trial = tmp_path / f"{scenario}-{k}"
        ctx = _trial_copy(prepared, scenario, trial)
        code = _child(ctx, {"CUSTVAL_KILL_AT": str(k)}).wait(timeout=120)
        assert code == -9, (k, operations[k - 1], code)
        outcomes.append(_heal_and_check(trial, snapshot, scenario, str(prepared["first_run"])))
        shutil.rmtree(trial)
    # killed before the switch: the old snapshot (or none); after it: the new one, whole
    switch = operations.index("commit.switch") + 1
    assert switch in moments and len(outcomes) == len(moments)
    for k, outcome in zip(moments, outcomes, strict=True):
        old = str(prepared["first_run"]) if scenario == "rerun" else None
        assert outcome == (old if k <= switch else f"B-{scenario}"), (k, outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["rerun", "new"])
def test_kill_at_random_moments_while_a_reader_watches(
    prepared: dict[str, object], tmp_path: Path, scenario: str
) -> None:
    snapshot: date = prepared["snapshot"]  # type: ignore[assignment]
    rng = random.Random(9 if scenario == "rerun" else 10)
    trials = 20
    for k in range(trials):
        trial = tmp_path / f"random-{k}"
        ctx = _trial_copy(prepared, scenario, trial)
        child = _child(ctx, {})
        deadline = time.monotonic() + rng.uniform(0.2, 2.5)
        while time.monotonic() < deadline and child.poll() is None:
            if assert_consistent(trial, snapshot) is not None:  # a reader polling the whole time
                assert_pinned_read(trial, snapshot)  # and one that pins a version across many reads
        child.kill()
        child.wait(timeout=30)
        _heal_and_check(trial, snapshot, scenario, str(prepared["first_run"]))
        if k < trials - 1:
            shutil.rmtree(trial)
    # the healed warehouse takes the next run as usual
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "run",
            "--source",
            str(prepared["source"]),
            "--as-of",
            snapshot.isoformat(),
            "--warehouse",
            str(trial),
            "--config",
            str(prepared["config"]),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    assert assert_consistent(trial, snapshot) not in (None, prepared["first_run"], f"B-{scenario}")
