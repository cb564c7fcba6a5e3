"""Two runs of the same snapshot at once: one builds it, the other stops with a clear message."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest

from pipelines.context import RunContext
from pipelines.errors import RunLockedError
from pipelines.run.pipeline import run_all


@pytest.mark.slow
def test_two_runs_of_the_same_snapshot_at_once(generated_orders, tmp_path: Path) -> None:
    source, _, last_day = generated_orders
    wh = tmp_path / "wh"
    outcomes: list[object] = []

    def run() -> None:
        try:
            ctx = RunContext.create(source=str(source), snapshot_date=last_day, warehouse=wh)
            outcomes.append(run_all(ctx))
        except RunLockedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RunLockedError)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert f"snapshot {last_day} is being built by run" in str(refused[0])
    # the published partition is the finished run's, whole
    published = pl.read_parquet(Path(done[0]["tables"]["customer_rfm"]["path"]))
    assert published.height == done[0]["tables"]["customer_rfm"]["rows"]
    assert not list((wh / "_locks").glob("*.lease"))
