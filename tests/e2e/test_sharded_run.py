"""A sharded run publishes the same rows as the unsharded one, for K = 3 and 8 (issue 17).

Each input is run unsharded (K = 1, today's path) and sharded; every published table is read
back, sorted, and compared: the same rows (model parameters to 1e-9 relative; the fits'
`seconds` is a timing). The shards reconcile: every staged order in one shard, and each shard's
customers are exactly the published customers whose id hashes to it (hashlib, here).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import REPO, write_csv
from integration.transform.test_marts import ROWS
from polars.testing import assert_frame_equal
from warehouse_helper import custval

pytestmark = pytest.mark.slow


def _bucket(customer_id: str, shards: int) -> int:
    """The issue's definition, independently of pipelines/transform/shards.py."""
    return int(hashlib.md5(customer_id.encode("utf-8")).hexdigest()[:16], 16) % shards


def _run(
    source: Path, as_of: str | date, warehouse: Path, shards: int, config: str = ""
) -> dict[str, Any]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    path = warehouse.parent / f"{warehouse.name}.yaml"
    path.write_text(f"{config}sources:\n  shards: {shards}\n  shard_workers: 2\n")
    ctx = RunContext.create(
        source=str(source), snapshot_date=as_of, warehouse=warehouse, config_path=str(path)
    )
    return run_all(ctx)


def _published(manifest: dict[str, Any]) -> dict[str, pl.DataFrame]:
    tables = {}
    for name, facts in manifest["tables"].items():
        frame = pl.read_parquet(Path(facts["path"]))
        if name == "model_fit":
            frame = frame.drop("seconds")  # a timing
        sortable = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
        tables[name] = frame.sort(sortable, nulls_last=True)
    return tables


def _assert_same(unsharded: dict[str, Any], sharded: dict[str, Any]) -> None:
    one, many = _published(unsharded), _published(sharded)
    assert one.keys() == many.keys()
    for name in one:
        assert one[name].height == many[name].height, name
        # floats to 1e-9 relative (model parameters, likelihoods, predictions); all else exact
        assert_frame_equal(one[name], many[name], rel_tol=1e-9, abs_tol=0.0)
    for key in ("rows_in", "rows_accepted", "rows_quarantined", "rows_duplicate"):
        assert unsharded["counts"][key] == sharded["counts"][key], key


def _assert_reconciles(manifest: dict[str, Any], shards: int) -> None:
    sharding = manifest["sharding"]
    assert sharding["shards"] == shards and len(sharding["per_shard"]) == shards
    staged = manifest["counts"]["rows_in_snapshot"]
    assert sum(s["orders"] for s in sharding["per_shard"]) == staged == sharding["orders"]
    customers = pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))["customer_id"]
    expected = [0] * shards
    for customer_id in customers.to_list():
        expected[_bucket(customer_id, shards)] += 1
    assert [s["customers"] for s in sharding["per_shard"]] == expected
    assert all(s["misplaced"] == 0 for s in sharding["per_shard"])


def _generated(path: Path) -> Path:
    """A few thousand generated orders, with referrers (often in another shard), exact
    duplicates, and duplicated order ids whose copies name different customers."""
    from pipelines.tools.generate import simulate_orders, write_orders

    frame = simulate_orders(4000, seed=17, start=date(2024, 1, 1), days=400)
    ids = frame["customer_id"].unique().sort()
    referrer = {c: ids[(i * 7 + 3) % ids.len()] for i, c in enumerate(ids) if i % 5 == 0}
    frame = frame.with_columns(
        referred_by=pl.col("customer_id").replace_strict(referrer, default=None)
    )
    copies = frame.head(20)  # exact copies: counted as duplicates
    conflicts = frame.slice(100, 15).with_columns(  # same order ids, another customer
        customer_id=pl.col("customer_id").shift(1, fill_value=ids[0])
    )
    return write_orders(pl.concat([frame, copies, conflicts]), path, "csv")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("sharded_generated")
    source = _generated(root / "orders.csv")
    as_of = "2025-02-03"
    return source, as_of, _run(source, as_of, root / "wh_1", 1)


@pytest.mark.parametrize("shards", [3, 8])
def test_generated_orders_publish_the_same_rows(
    generated: tuple[Path, str, dict[str, Any]], shards: int, tmp_path: Path
) -> None:
    source, as_of, unsharded = generated
    assert unsharded["counts"]["rows_duplicate"] == 20
    assert unsharded["quarantine_reasons"].get("DUPLICATE_CONFLICT", 0) >= 1
    assert "sharding" not in unsharded  # K = 1 is today's unsharded build
    sharded = _run(source, as_of, tmp_path / "wh", shards)
    _assert_same(unsharded, sharded)
    _assert_reconciles(sharded, shards)
    fits = _published(sharded)["model_fit"]
    assert fits.filter(pl.col("status") == "ok").height >= 7  # both snapshot models fitted
    quarantine = [
        pl.read_parquet(Path(m["quarantine_path"]))
        .drop("run_id", "quarantined_at")  # the run's own
        .sort("source_file", "source_line")
        for m in (unsharded, sharded)
    ]
    assert_frame_equal(*quarantine)


@pytest.mark.parametrize("shards", [3, 8])
def test_the_hand_built_sample_publishes_the_same_rows(
    orders_csv: Callable[..., Path], tmp_path: Path, shards: int
) -> None:
    """The marts tests' five customers: most of 8 shards are empty, and that is fine."""
    source = orders_csv(ROWS)
    config = "predictive:\n  enabled: false\n"
    unsharded = _run(source, "2024-03-31", tmp_path / "wh_1", 1, config)
    sharded = _run(source, "2024-03-31", tmp_path / "wh_k", shards, config)
    _assert_same(unsharded, sharded)
    _assert_reconciles(sharded, shards)
    if shards == 8:
        assert any(s["orders"] == 0 for s in sharded["sharding"]["per_shard"])


def test_cli_runs_sharded_and_refuses_a_bad_shard_count(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "orders.csv", ROWS)
    config = tmp_path / "config.yaml"
    config.write_text("predictive:\n  enabled: false\n")
    common = ["--source", str(source), "--as-of", "2024-03-31", "--config", str(config)]
    wh = tmp_path / "it's [a] warehouse"  # quotes and glob characters in the shards' paths
    done = custval("run", *common, "--warehouse", str(wh), "--shards", "3", "--workers", "2")
    assert done.returncode == 0, done.stderr
    manifest_path = wh / "runs" / "snapshot_date=2024-03-31" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sharding"]["shards"] == 3
    bad = custval("run", *common, "--warehouse", str(tmp_path / "wh2"), "--shards", "0")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


DAEMON_RUN = """
import multiprocessing
import sys


def run(source, warehouse, config):
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    assert multiprocessing.current_process().daemon
    ctx = RunContext.create(
        source=source, snapshot_date="2024-03-31", warehouse=warehouse, config_path=config
    )
    run_all(ctx)


if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(
        target=run, args=tuple(sys.argv[1:]), daemon=True
    )
    child.start()
    child.join()
    sys.exit(child.exitcode)
"""


def test_a_daemon_process_builds_the_shards_itself(
    orders_csv: Callable[..., Path], tmp_path: Path
) -> None:
    """A task in a Celery prefork worker runs in a daemon process, which may not start a
    process pool (the Celery test met this in `build_marts`): there the shards run one after
    another, with the same rows."""
    source = orders_csv(ROWS)
    config = "predictive:\n  enabled: false\n"
    unsharded = _run(source, "2024-03-31", tmp_path / "wh_1", 1, config)
    path = tmp_path / "daemon.yaml"
    path.write_text(f"{config}sources:\n  shards: 3\n  shard_workers: 2\n")
    script = tmp_path / "daemon_run.py"
    script.write_text(DAEMON_RUN)
    warehouse = tmp_path / "wh_daemon"
    res = subprocess.run(
        [sys.executable, str(script), str(source), str(warehouse), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest_path = warehouse / "runs" / "snapshot_date=2024-03-31" / "manifest.json"
    sharded = json.loads(manifest_path.read_text())
    assert sharded["sharding"]["shards"] == 3
    _assert_same(unsharded, sharded)
