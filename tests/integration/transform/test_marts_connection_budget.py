"""The unsharded build hands DuckDB's leftover memory back between models.

When the process holds more than the budget leaves outside DuckDB
(`memory_limit x (1 - duckdb_share)`), the marts stage closes its connection after a model and
opens a fresh one on the same build file. The tables are in the file, so the published rows
must not change; a budget small enough that every model goes over it makes every model run
on a connection of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

pytestmark = pytest.mark.slow


def test_a_fresh_connection_per_model_publishes_the_same_rows(
    generated_orders: tuple[Path, pl.DataFrame, object],
    run_pipeline: Callable[..., dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines.transform import marts

    source, _, last_day = generated_orders
    want = run_pipeline(source, last_day, warehouse=tmp_path / "wide")

    opened: list[Any] = []
    real_connect = marts.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs.get("database"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(marts, "connect", counting_connect)
    tight = tmp_path / "tight.yaml"
    tight.write_text("resources:\n  memory_limit: 256MB\n", encoding="utf-8")  # 128 MB outside
    got = run_pipeline(source, last_day, warehouse=tmp_path / "tight", config=tight)

    built = [d for d in opened if d is not None and d.name == marts.BUILD_DATABASE]
    assert len(built) == 1 + len(got["model_seconds"])  # the first, then one after each model
    assert got["resources"]["memory_limit"] == "256MB"
    peaks = got["model_peak_rss_mb"]  # the process's peak while each model was built
    assert peaks.keys() == got["model_seconds"].keys()
    assert all(mb > 256 / 2 for mb in peaks.values())  # over the line: why each reopened
    assert set(got["tables"]) == set(want["tables"]) and len(want["tables"]) >= 7
    for table in want["tables"]:
        before = pl.read_parquet(Path(want["tables"][table]["path"]))
        after = pl.read_parquet(Path(got["tables"][table]["path"]))
        drop = ["seconds"] if table == "model_fit" else []
        assert after.drop(drop).equals(before.drop(drop)), table
