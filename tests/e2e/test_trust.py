"""Bad input and hostile conditions, as a user meets them: one `error:` line or a quarantined
row with a reason code -- never a traceback, a hang, a silent loss or a torn snapshot."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, require

HEADER = "order_id,customer_id,order_ts,amount,currency,status"
NO_PREDICTIONS = "predictive:\n  enabled: false\n"


def custval(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def run_cli(
    source: object,
    as_of: str,
    warehouse: object,
    *extra: str,
    config: object = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`custval run --source S --as-of D --warehouse W [--config C] [extra ...]`."""
    config_args = ["--config", str(config)] if config is not None else []
    return custval(
        "run",
        "--source",
        str(source),
        "--as-of",
        as_of,
        "--warehouse",
        str(warehouse),
        *config_args,
        *extra,
        timeout=timeout,
    )


def one_error_line(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode != 0, res.stdout[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _rows(n: int, day: str = "2024-03-01", prefix: str = "O") -> list[str]:
    return [
        f"{prefix}{i},C{i % 997},{day}T10:{i % 60:02d}:00Z,{10 + i % 90}.50,USD,completed"
        for i in range(n)
    ]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(NO_PREDICTIONS)
    return path


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER, *_rows(300)]) + "\n")
    return path


# ------------------------------------------------------------------------------------------
# Lines, not just records


def test_twenty_stray_quotes_lose_only_their_own_lines(tmp_path: Path, cfg: Path) -> None:
    rng = random.Random(20)
    good = _rows(100_000)
    lines = list(good)
    positions = sorted(rng.sample(range(1, 100_000), 18)) + [50_000, 50_003]  # two close together
    bad_ids = []
    for k, pos in enumerate(sorted(set(positions), reverse=True)):
        bad_ids.append(f"Q{k}")
        lines.insert(pos, f'Q{k},C1,2024-03-01T10:00:00Z,"5.00,USD,completed')
    src = tmp_path / "quotes.csv"
    src.write_text("\n".join([HEADER, *lines]) + "\n")
    wh = tmp_path / "wh"
    res = run_cli(str(src), "2024-03-01", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((wh / "runs" / "snapshot_date=2024-03-01" / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["rows_in"] == 100_020 and c["rows_accepted"] == 100_000 and c["rows_quarantined"] == 20
    assert manifest["quarantine_reasons"] == {"UNBALANCED_QUOTE": 20}
    assert manifest["lines"] == {"lines_in": 100_020, "lines_quarantined": 20}
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / "snapshot_date=2024-03-01")
    assert int(rfm["order_count"].sum()) == 100_000  # every good order is in the tables
    q = pl.read_parquet(wh / "quarantine" / "orders" / "snapshot_date=2024-03-01")
    file_lines = src.read_text().splitlines()
    assert all(file_lines[n - 1].startswith("Q") for n in q["source_line"].to_list())


def test_a_stray_quote_that_spoils_many_lines_trips_the_gate(tmp_path: Path, cfg: Path) -> None:
    """A quoted field that really spans 30 lines is one record but 30 lines for the gate."""
    body = _rows(400)
    spanning = (
        'X1,C1,2024-03-01T10:00:00Z,1.00,USD,"' + "\n".join(f"line {i}" for i in range(30)) + '"'
    )
    src = tmp_path / "span.csv"
    src.write_text("\n".join([HEADER, *body, spanning]) + "\n")
    config = tmp_path / "span.yaml"
    config.write_text(NO_PREDICTIONS + "sources:\n  csv:\n    max_record_lines: 50\n")
    res = run_cli(str(src), "2024-03-01", str(tmp_path / "wh"), config=str(config))
    one_error_line(
        res,
        "quarantined_share failed: 30 of 430 lines quarantined",
        "1 of 401 records",
        "nothing published",
    )


# ------------------------------------------------------------------------------------------
# Odd parameters and inputs: one line each, nothing torn


@pytest.mark.parametrize(
    ("as_of", "needle"),
    [
        ("9999-12-31", "is in the future"),
        ("0001-01-01", "is before validation.earliest_order_date (1990-01-01)"),
        (datetime.now(UTC).date().isoformat(), "has not ended"),
    ],
)
def test_dates_outside_the_supported_range(
    small_csv: Path, tmp_path: Path, as_of: str, needle: str
) -> None:
    res = run_cli(str(small_csv), as_of, str(tmp_path / "wh"))
    one_error_line(res, needle)
    assert not (tmp_path / "wh").exists()  # refused before any work


def test_a_partial_day_only_when_asked(tmp_path: Path, cfg: Path) -> None:
    today = datetime.now(UTC)
    earlier = today - timedelta(minutes=30) if today.hour or today.minute >= 30 else today
    src = tmp_path / "today.csv"
    src.write_text(
        "\n".join(
            [
                HEADER,
                *_rows(50, day="2024-03-01"),
                f"T1,C1,{earlier:%Y-%m-%dT%H:%M:%SZ},5.00,USD,completed",
            ]
        )
        + "\n"
    )
    wh = tmp_path / "wh"
    res = run_cli(
        str(src), today.date().isoformat(), str(wh), "--allow-partial-day", config=str(cfg)
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda tmp: "gs://bucket/x", "gs:// warehouses are not supported"),
        (lambda tmp: "s3://Not_A_Bucket/x", "'Not_A_Bucket' is not a valid bucket name"),
        (lambda tmp: str(_file(tmp / "afile")), "is a file, not a directory"),
        (lambda tmp: str(_file(tmp / "afile")) + "/wh", "is a file, not a directory"),
    ],
)
def test_warehouses_we_cannot_write(small_csv: Path, tmp_path: Path, make, needle: str) -> None:
    res = run_cli(str(small_csv), "2024-03-01", make(tmp_path))
    one_error_line(res, needle)
    assert not Path("s3:").exists() and not Path("gs:").exists()


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def test_a_warehouse_path_with_glob_characters_works(
    small_csv: Path, tmp_path: Path, cfg: Path
) -> None:
    wh = tmp_path / "wh[1]*"
    (tmp_path / "wh1").mkdir()  # what `[1]` would match as a pattern
    res = run_cli(str(small_csv), "2024-03-01", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert (
        pl.read_parquet(
            wh / "marts" / "customer_rfm" / "snapshot_date=2024-03-01" / "part-0.parquet",
            glob=False,
        ).height
        == 300
    )
    again = run_cli(str(small_csv), "2024-03-01", str(wh), config=str(cfg))
    assert again.returncode == 0, again.stderr[-3000:]
    assert not any((tmp_path / "wh1").iterdir())


def test_wait_must_be_a_number_of_seconds(small_csv: Path, tmp_path: Path) -> None:
    for value in ("nan", "-1", "inf"):
        res = run_cli(str(small_csv), "2024-03-01", str(tmp_path / "wh"), "--wait", value)
        one_error_line(res, "--wait")


def test_a_semicolon_delimited_export(tmp_path: Path) -> None:
    src = tmp_path / "semi.csv"
    src.write_text("order_id;customer_id;order_ts;amount;currency\nO1;C1;2024-03-01;12,50;USD\n")
    res = run_cli(str(src), "2024-03-01", str(tmp_path / "wh"))
    one_error_line(res, "semicolon", 'sources.csv.delimiter: ";"')


def test_a_parquet_list_column(tmp_path: Path) -> None:
    src = tmp_path / "nested.parquet"
    pq.write_table(
        pa.table(
            {
                "order_id": ["O1"],
                "customer_id": ["C1"],
                "order_ts": ["2024-03-01T10:00:00Z"],
                "amount": [1.0],
                "currency": ["USD"],
                "channel": pa.array([["web", "app"]], pa.list_(pa.string())),
            }
        ),
        src,
    )
    res = run_cli(str(src), "2024-03-01", str(tmp_path / "wh"))
    one_error_line(res, "channel", "list")


def test_an_order_dated_0001_01_01_is_quarantined(tmp_path: Path, cfg: Path) -> None:
    src = tmp_path / "old.csv"
    src.write_text(
        "\n".join(
            [
                HEADER,
                *_rows(200),
                "Z1,C1,0001-01-01T00:00:00Z,5.00,USD,completed",
                "Z2,C2,1970-01-01T00:00:00Z,5.00,USD,completed",
            ]
        )
        + "\n"
    )
    wh = tmp_path / "wh"
    res = run_cli(str(src), "2024-03-01", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((wh / "runs" / "snapshot_date=2024-03-01" / "manifest.json").read_text())
    assert manifest["quarantine_reasons"] == {"IMPLAUSIBLE_DATE": 2}
    cohorts = pl.read_parquet(wh / "marts" / "cohort_retention" / "snapshot_date=2024-03-01")
    assert cohorts["cohort_month"].min() >= date(2024, 3, 1)
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / "snapshot_date=2024-03-01")
    assert rfm["tenure_days"].max() < 10


# ------------------------------------------------------------------------------------------
# Leases a full disk leaves behind


def test_an_empty_lease_file_is_an_error_naming_it(
    small_csv: Path, tmp_path: Path, cfg: Path
) -> None:
    wh = tmp_path / "wh"
    lease = wh / "_locks" / "snapshot_date=2024-03-01.lease"
    lease.parent.mkdir(parents=True)
    lease.write_text("")
    res = run_cli(
        str(small_csv), "2024-03-01", str(wh), "--wait", "30", config=str(cfg), timeout=60
    )
    one_error_line(res, str(lease), "--force")
    refused = custval("unlock", "--as-of", "2024-03-01", "--warehouse", str(wh))
    one_error_line(refused, str(lease))
    forced = custval("unlock", "--as-of", "2024-03-01", "--warehouse", str(wh), "--force")
    assert forced.returncode == 0 and "removed the unreadable lease" in forced.stdout, forced.stderr
    res = run_cli(str(small_csv), "2024-03-01", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]


# ------------------------------------------------------------------------------------------
# Full, read-only and unwritable disks (real mounts: CI runs as root on this machine kind)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    require(
        done.returncode == 0,
        f"cannot mount a tmpfs for the disk tests (needs root): {done.stderr.strip()}",
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _published(wh: Path, day: str) -> int:
    manifest = json.loads((wh / "runs" / f"snapshot_date={day}" / "manifest.json").read_text())
    return (
        int(
            pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={day}")[
                "order_count"
            ].sum()
        )
        if manifest
        else -1
    )


def test_a_full_disk(small_disk: Path, tmp_path: Path, cfg: Path) -> None:
    wh = small_disk / "wh"
    first = tmp_path / "first.csv"
    first.write_text("\n".join([HEADER, *_rows(300)]) + "\n")
    assert run_cli(str(first), "2024-03-01", str(wh), config=str(cfg)).returncode == 0
    bigger = tmp_path / "bigger.csv"
    bigger.write_text("\n".join([HEADER, *_rows(300), *_rows(120_000, prefix="B")]) + "\n")
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 600_000))
    res = run_cli(str(bigger), "2024-03-01", str(wh), config=str(cfg))
    one_error_line(res, "No space left on device", "the disk is full")
    assert _published(wh, "2024-03-01") == 300  # the old snapshot, whole
    filler.unlink()
    res = run_cli(str(bigger), "2024-03-01", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    assert _published(wh, "2024-03-01") == 120_300
    assert not any((wh / "_work").iterdir())  # the failed run's work dir is gone


def test_a_read_only_disk(small_disk: Path, small_csv: Path, cfg: Path) -> None:
    wh = small_disk / "wh"
    assert run_cli(str(small_csv), "2024-03-01", str(wh), config=str(cfg)).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    res = run_cli(str(small_csv), "2024-03-01", str(wh), config=str(cfg))
    one_error_line(res, "Read-only file system", "choose a writable --warehouse")
    assert _published(wh, "2024-03-01") == 300


def test_a_table_directory_that_cannot_be_written(
    small_disk: Path, tmp_path: Path, cfg: Path
) -> None:
    """A new snapshot whose customer_clv directory is read-only: nothing of it becomes visible."""
    wh = tmp_path / "wh"
    src = tmp_path / "two_days.csv"
    src.write_text(
        "\n".join([HEADER, *_rows(200), *_rows(100, day="2024-03-02", prefix="N")]) + "\n"
    )
    assert run_cli(str(src), "2024-03-01", str(wh), config=str(cfg)).returncode == 0
    table_dir = wh / "marts" / "customer_clv"
    subprocess.run(["mount", "--bind", str(table_dir), str(table_dir)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(table_dir)], check=True)
        res = run_cli(str(src), "2024-03-02", str(wh), config=str(cfg))
        one_error_line(res, str(table_dir), "nothing was published")
        for table in (wh / "marts").iterdir():
            assert not (table / "snapshot_date=2024-03-02" / "part-0.parquet").exists(), table
        assert not (wh / "runs" / "snapshot_date=2024-03-02" / "manifest.json").exists()
        assert _published(wh, "2024-03-01") == 200
    finally:
        subprocess.run(["umount", str(table_dir)], check=False)
    res = run_cli(str(src), "2024-03-02", str(wh), config=str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    assert _published(wh, "2024-03-02") == 300
