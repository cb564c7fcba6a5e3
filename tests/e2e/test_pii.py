"""No PII value appears in clear in anything published: tables, manifests, validation docs."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from pipelines.contracts import all_contracts
from pipelines.tools.generate import simulate_orders, write_orders

RESTRICTED = (
    "raw",
    "accepted",
    "quarantine",
    "rejected",
    "_work",
)  # zones with source data as received


def restricted(path: Path, warehouse: Path) -> bool:
    parts = path.relative_to(warehouse).parts
    # a snapshot version keeps its quarantine under _snapshots/snapshot_date=D/<version>/quarantine/
    return parts[0] in RESTRICTED or (
        parts[0] == "_snapshots" and len(parts) > 3 and parts[3] == "quarantine"
    )


def published_text(warehouse: Path) -> str:
    """Every string in every file a BI role may read: Parquet values and metadata, JSON, HTML."""
    chunks: list[str] = []
    for path in warehouse.rglob("*"):
        if not path.is_file() or restricted(path, warehouse):
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            chunks.append(str(table.schema.metadata))
            for column in table.columns:
                if str(column.type) in ("string", "large_string"):
                    chunks.extend(v for v in column.to_pylist() if v is not None)
        elif path.suffix in (".json", ".html", ".md", ".txt", ".csv"):
            chunks.append(path.read_text(errors="replace"))
    return "\n".join(chunks)


@pytest.fixture
def source_with_pii(tmp_path: Path) -> tuple[Path, list[str]]:
    frame = simulate_orders(2_000, seed=4).with_columns(
        (pl.lit("Person ") + pl.col("customer_id")).alias("name"),
        (pl.lit("+1 555 ") + pl.col("customer_id").str.slice(1)).alias("phone"),
    )
    path = write_orders(frame, tmp_path / "src" / "orders.csv", "csv")
    values = (
        frame["email"].unique().to_list()
        + frame["name"].unique().to_list()
        + frame["phone"].unique().to_list()
    )
    return path, values


def test_no_published_contract_has_pii_columns() -> None:
    for name, contract in all_contracts().items():
        if name != "orders":
            assert not contract.pii_columns, name


@pytest.mark.parametrize("hashed", [False, True])
def test_no_pii_in_published_files(
    source_with_pii, run_pipeline: Callable[..., dict], tmp_path: Path, monkeypatch, hashed: bool
) -> None:
    source, values = source_with_pii
    config = None
    if hashed:
        config = tmp_path / "cfg.yaml"
        config.write_text("privacy:\n  hashed_columns: [email]\n")
        monkeypatch.setenv("CUSTVAL_HMAC_KEY", "test-key-0123456789")
    wh = tmp_path / "wh"
    manifest = run_pipeline(source, "2025-12-30", warehouse=wh, config=config)
    text = published_text(wh)
    assert manifest["counts"]["rows_accepted"] == 2_000
    leaked = [v for v in values if v in text]
    assert leaked == []
    assert "example.com" not in text
    # The raw zone does hold them (it is the landed source), which shows the scan can find them.
    raw = pl.read_parquet(next((wh / "raw").rglob("*.parquet")))
    assert set(values[:5]) <= set(
        raw["email"].to_list() + raw["name"].to_list() + raw["phone"].to_list()
    )
    rfm = pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))
    if hashed:  # the published key is the HMAC of the normalised address, computed independently
        orders = pl.read_csv(source)
        latest = orders.sort("order_ts").group_by("customer_id").agg(pl.col("email").last())
        expected = {
            c: hmac.new(
                b"test-key-0123456789", e.strip().lower().encode(), hashlib.sha256
            ).hexdigest()
            for c, e in latest.iter_rows()
        }
        got = dict(zip(rfm["customer_id"].to_list(), rfm["email_hmac"].to_list()))
        assert got == {c: expected[c] for c in got}
    else:
        assert rfm["email_hmac"].null_count() == rfm.height


def test_restricted_zones_are_closed_and_work_dirs_do_not_outlive_their_run(
    source_with_pii, tmp_path: Path
) -> None:
    """The restricted zones are mode 0700; a killed run's work dir (landed rows, e-mails) is gone
    at the next start; a failed run's at once."""
    import os
    import signal
    import stat
    import subprocess
    import sys
    import time

    source, values = source_with_pii
    wh = tmp_path / "wh"
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "--source",
        str(source),
        "--as-of",
        "2025-12-30",
        "--warehouse",
        str(wh),
    ]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((wh / "_work").glob("*/validate.json")):
        time.sleep(
            0.01
        )  # validate has written the accepted rows (e-mails included) and saved its result
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed = [p.name for p in (wh / "_work").iterdir()]
    accepted = next((wh / "_work").glob("*/accepted/part-0.parquet"))
    assert killed and any(v in pl.read_parquet(accepted)["email"].to_list() for v in values)
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "removed the work directory of run " + killed[0] in res.stderr  # said, not silent
    assert list((wh / "_work").iterdir()) == []
    for zone in ("raw", "quarantine", "_work"):
        assert stat.S_IMODE((wh / zone).stat().st_mode) == 0o700, zone
    version = next(
        p for p in (wh / "_snapshots" / "snapshot_date=2025-12-30").iterdir() if "@" in p.name
    )
    assert stat.S_IMODE((version / "quarantine").stat().st_mode) == 0o700
    text = published_text(wh)  # once: read for every value, it cost two minutes
    leaked = [v for v in values if v in text]
    assert leaked == []
