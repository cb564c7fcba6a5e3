"""The backtest drift warning: against the previous published snapshot only."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.predictive.drift import backtest_drift_warning


def test_drift_warning(tmp_path: Path) -> None:
    from datetime import date

    from pipelines.storage import snapshots
    from pipelines.storage.jsonfile import write_json

    version = snapshots.new_version(tmp_path, date(2024, 1, 1), "run-1")
    (version / "marts" / "model_backtest").mkdir(parents=True)
    pl.DataFrame({"scope": ["overall", "frequency=0"], "mae": [0.2, 0.1]}).write_parquet(
        version / "marts" / "model_backtest" / "part-0.parquet"
    )
    write_json(version / "runs" / "manifest.json", {"snapshot_date": "2024-01-01"})
    snapshots.commit(tmp_path, date(2024, 1, 1), version)
    unfinished = (
        tmp_path / "marts" / "model_backtest" / "snapshot_date=2024-01-01T"
    )  # not a published snapshot
    unfinished.mkdir()
    assert backtest_drift_warning(tmp_path, "2024-01-02", 0.21, 1.5) is None
    warning = backtest_drift_warning(tmp_path, "2024-01-02", 0.5, 1.5)
    assert warning is not None and "0.5000 vs 0.2000" in warning and "2.50x" in warning
    assert (
        backtest_drift_warning(tmp_path, "2024-01-01", 0.5, 1.5) is None
    )  # only earlier snapshots count
