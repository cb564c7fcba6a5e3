"""kill -9 during a publish to an S3 warehouse (moto on 127.0.0.1): the previous snapshot stays
readable and whole, and the next command heals the warehouse.

As in `test_publish_crash.py`: run A has published snapshot D; run B has built D up to its
marts; a child process holding B's real lease runs B's publish and manifest (the commit) and is
SIGKILLed at the n-th file operation (`pipelines/storage/faults.py`). Each trial works on its
own copy of the bucket's warehouse and of B's local view. After each kill a reader finds:

- the stable manifest readable (or, for a date never published, absent), naming a version
  whose files are all there, with the row counts the manifest gives (the pinned read);
- before the commit's pointer put, the stable files exactly run A's; from it on, the pointer
  names run B;

then recovery (what every command does first) finishes an interrupted copy and deletes the
dead run's unpublished version: the stable files are then exactly the committed version's,
only it and the version before it are kept, and the dead run's lease is taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, S3_ENV_KEYS, new_bucket
from warehouse_helper import Published, operation_boundaries, s3_client

from pipelines.context import RunContext, check_warehouse
from pipelines.run.pipeline import begin, run_all, run_stage
from pipelines.storage import local_view, locking
from pipelines.storage.recovery import recover_warehouse

NO_PREDICTIONS = "predictive:\n  enabled: false\n"
TABLES = ("customer_rfm", "customer_clv", "kpi_summary", "cohort_retention", "model_fit")

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


@pytest.fixture(scope="module")
def s3_module(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server's AWS environment for the whole module; the bucket."""
    base = tmp_path_factory.mktemp("s3env")
    with pytest.MonkeyPatch.context() as mp:
        for key in S3_ENV_KEYS:
            mp.delenv(key, raising=False)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": s3_server,
            "AWS_CONFIG_FILE": str(base / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(base / "none"),
            "CUSTVAL_SCRATCH": str(base / "scratch"),
        }
        for key, value in env.items():
            mp.setenv(key, value)
        yield new_bucket(s3_server)


@pytest.fixture(scope="module")
def prepared(s3_module: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipelines.tools.generate import simulate_orders, write_orders

    base = tmp_path_factory.mktemp("crash-s3")
    frame = simulate_orders(3_000, seed=5, start=date(2024, 1, 1), days=200)
    source = write_orders(frame, base / "orders.csv", "csv")
    snapshot = frame["order_ts"].max().date()  # type: ignore[union-attr]
    config = base / "cfg.yaml"
    config.write_text(NO_PREDICTIONS)
    urls = {"rerun": f"s3://{s3_module}/rerun", "new": f"s3://{s3_module}/new"}
    first = run_all(
        RunContext.create(
            source=str(source),
            snapshot_date=snapshot,
            warehouse=urls["rerun"],
            config_path=str(config),
        )
    )
    contexts = {}
    for name, url in urls.items():  # run B: every stage up to the marts, its view kept
        ctx = RunContext.create(
            source=str(source),
            snapshot_date=snapshot,
            warehouse=url,
            config_path=str(config),
            run_id=f"B-{name}",
        )
        leases = begin(ctx)
        for stage in ("extract", "validate", "stage", "marts"):
            run_stage(stage, ctx)
        leases.release()
        contexts[name] = ctx
    return {
        "bucket": s3_module,
        "snapshot": snapshot,
        "first": first,
        "contexts": contexts,
        "source": source,
        "config": config,
    }


def _copy_prefix(bucket: str, source: str, dest: str) -> None:
    client = s3_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=source + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            key = dest + obj["Key"][len(source) :]
            client.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": obj["Key"]}
            )


def _trial(prepared: dict[str, Any], scenario: str, name: str) -> RunContext:
    """A copy of the scenario's bucket prefix and of run B's local view, for one trial."""
    ctx: RunContext = prepared["contexts"][scenario]
    bucket = prepared["bucket"]
    _copy_prefix(bucket, scenario, name)
    url = f"s3://{bucket}/{name}"
    view = local_view.scratch_root() / f"trial-{name}"
    shutil.copytree(ctx.warehouse, view, symlinks=True)
    for path in [view / local_view.layout.VIEW_MARKER, *(view / "_work").rglob("*.json")]:
        text = path.read_text().replace(str(ctx.warehouse), str(view))
        path.write_text(text.replace(str(ctx.remote), url))
    return RunContext.from_dict({**ctx.to_dict(), "warehouse": str(view), "remote": url})


def _child(ctx: RunContext, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(ctx.to_dict())],
        env={**os.environ, **env},
        cwd=REPO,
    )


def _etags(bucket: str, prefix: str) -> dict[str, str]:
    """Every object under the prefix with the md5 of its bytes (uploads and server-side copies
    give the same bytes different ETags)."""
    import hashlib

    client = s3_client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"
    ):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            if rel.startswith(("raw/", "accepted/", "docs/")):
                out[rel] = obj["ETag"]
                continue
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[rel] = hashlib.md5(body).hexdigest()
    return out


def _state(bucket: str, name: str, snapshot: date, *, objects: bool = True) -> dict[str, Any]:
    """What a reader finds: the stable manifest (whole, pinned), the pointer, every object
    (not while a writer runs: listing then reading races its deletes of leases and losers)."""
    wh = Published(f"s3://{bucket}/{name}")
    part = f"snapshot_date={snapshot}"
    manifest = wh.manifest(snapshot)
    if manifest is not None:  # the pinned read: the version it names is whole
        assert wh.exists(f"_snapshots/{part}/{manifest['version']}/runs/manifest.json")
        for table in TABLES:
            assert wh.pinned_table(table, snapshot).height == manifest["tables"][table]["rows"]
    return {
        "manifest": manifest,
        "pointer": wh.json(f"_snapshots/{part}/current.json"),
        "objects": _etags(bucket, name) if objects else {},
    }


def _visible(objects: dict[str, str], snapshot: date) -> dict[str, str]:
    """The snapshot's files readers glob: its partition of every published zone (marts,
    quarantine, reports, runs -- not the raw zone's batch, nor the manifests' history)."""
    part = f"/snapshot_date={snapshot}/"
    return {
        key: tag
        for key, tag in objects.items()
        if part in f"/{key}"
        and not key.startswith(("_snapshots/", "raw/"))
        and "/history/" not in key
    }


def _shows_exactly(objects: dict[str, str], snapshot: date, version: str) -> bool:
    """Every file readers glob is the version's (same bytes: ETag), and nothing else is."""
    prefix = f"_snapshots/snapshot_date={snapshot}/{version}/"
    wanted = {}
    for key, tag in objects.items():
        if key.startswith(prefix):
            *dirs, file = key[len(prefix) :].split("/")
            wanted["/".join([*dirs, f"snapshot_date={snapshot}", file])] = tag
    return bool(wanted) and _visible(objects, snapshot) == wanted


def _operations(prepared: dict[str, Any], scenario: str, tmp: Path) -> list[str]:
    ctx = _trial(prepared, scenario, f"trace-{scenario}")
    trace = tmp / f"trace-{scenario}.txt"
    assert _child(ctx, {"CUSTVAL_FAULT_TRACE": str(trace)}).wait(timeout=180) == 0
    local_view.close(ctx.warehouse)
    return [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]


def _kill_and_heal(prepared: dict[str, Any], scenario: str, k: int, switch: int) -> str | None:
    """Kill run B at operation k; check what a reader sees, heal, check again; the run shown."""
    snapshot: date = prepared["snapshot"]
    bucket = prepared["bucket"]
    name = f"{scenario}-{k}"
    ctx = _trial(prepared, scenario, name)
    code = _child(ctx, {"CUSTVAL_KILL_AT": str(k)}).wait(timeout=180)
    assert code == -9, (k, code)
    first_run = prepared["first"]["run_id"]
    before = _state(bucket, name, snapshot)
    if k <= switch:  # the commit has not happened: the previous snapshot, exactly, or none
        if scenario == "rerun":
            assert before["manifest"]["run_id"] == first_run
            assert _shows_exactly(before["objects"], snapshot, before["manifest"]["version"])
        else:
            assert before["manifest"] is None and before["pointer"] is None
            assert _visible(before["objects"], snapshot) == {}
    else:  # committed: the pointer names B; the stable manifest is A's or B's, whole
        assert before["pointer"]["version"].startswith(f"B-{scenario}@")
        shown = before["manifest"]["run_id"] if before["manifest"] else None
        assert shown in ((first_run, f"B-{scenario}") if scenario == "rerun" else (None, "B-new"))
    local_view.close(ctx.warehouse)  # the dead run's view (recovery would remove it too)

    root = check_warehouse(f"s3://{bucket}/{name}")  # a command's view: what every command does
    try:
        recover_warehouse(root)
        after = _state(bucket, name, snapshot)
        expected = f"B-{scenario}" if k > switch else (first_run if scenario == "rerun" else None)
        shown_run = after["manifest"]["run_id"] if after["manifest"] else None
        assert shown_run == expected, (k, shown_run, expected)
        if after["pointer"] is not None:
            version = after["pointer"]["version"]
            assert after["manifest"]["version"] == version
            assert _shows_exactly(after["objects"], snapshot, version)
            versions = {
                key.split("/")[2]
                for key in after["objects"]
                if key.startswith("_snapshots/") and "@" in key
            }
            assert versions <= {version, after["pointer"].get("previous")}, versions
        else:
            assert _visible(after["objects"], snapshot) == {}
            assert not [key for key in after["objects"] if key.startswith("_snapshots/")]
        # the dead run's lease is taken over without `custval unlock`
        locking.acquire(root, snapshot, "next-run", wait_seconds=0)
        locking.release(root, snapshot, "next-run")
    finally:
        local_view.close(root)
    return shown_run


def _switch(operations: list[str]) -> int:
    return operations.index("commit.switch") + 1  # killed at it: the put has not been made


@pytest.mark.parametrize("scenario", ["new"])  # "rerun": every kind of operation, below
def test_kill_around_the_commit(prepared: dict[str, Any], tmp_path: Path, scenario: str) -> None:
    """A date never published: killed before the pointer put, at it, in the copy, at the
    manifest copy -- the snapshot does not exist, or exists whole once healed."""
    operations = _operations(prepared, scenario, tmp_path)
    assert {"publish.table", "commit.upload", "commit.switch", "commit.copy"} <= set(operations)
    switch = _switch(operations)
    moments = sorted(
        {
            operations.index("commit.upload") + 1,  # the first upload of the version
            switch - 1,  # the manifest uploaded, the pointer not yet written
            switch,
            switch + 1,  # the pointer written, the first copy not made
            operations.index("commit.copy_manifest") + 1,  # every table copied, not the manifest
        }
    )
    outcomes = [_kill_and_heal(prepared, scenario, k, switch) for k in moments]
    assert outcomes[-1] == f"B-{scenario}"


@pytest.mark.slow
def test_kill_at_every_kind_of_file_operation_of_publish(
    prepared: dict[str, Any], tmp_path: Path
) -> None:
    operations = _operations(prepared, "rerun", tmp_path)
    switch = _switch(operations)
    moments = operation_boundaries(operations)
    assert len(moments) < len(operations) and switch in moments
    outcomes = {k: _kill_and_heal(prepared, "rerun", k, switch) for k in moments}
    first_run = prepared["first"]["run_id"]
    assert all(run == (first_run if k <= switch else "B-rerun") for k, run in outcomes.items())


def test_a_pinned_reader_never_sees_a_torn_snapshot(prepared: dict[str, Any]) -> None:
    """While run B publishes, a reader polls: the manifest it finds always pins a whole version."""
    snapshot: date = prepared["snapshot"]
    ctx = _trial(prepared, "rerun", "watched")
    child = _child(ctx, {})
    seen = set()
    while child.poll() is None:
        state = _state(prepared["bucket"], "watched", snapshot, objects=False)  # pinned read
        seen.add(state["manifest"]["run_id"])
    assert child.wait() == 0
    local_view.close(ctx.warehouse)
    final = _state(prepared["bucket"], "watched", snapshot)
    assert final["manifest"]["run_id"] == "B-rerun"
    assert _shows_exactly(final["objects"], snapshot, final["manifest"]["version"])
    assert seen <= {prepared["first"]["run_id"], "B-rerun"}
