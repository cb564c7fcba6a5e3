"""The command line, end to end, as a user runs it: subprocesses, exit codes, published rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest


def custval(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUSTVAL_")}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**clean, **(env or {})},
    )


def independent_rfm_counts(orders: pl.DataFrame, snapshot: str) -> pl.DataFrame:
    """Order count and net revenue per customer straight from the generated frame (Polars)."""
    end = pl.lit(snapshot).str.to_date().dt.offset_by("1d").cast(pl.Datetime("us", "UTC"))
    o = orders.filter(pl.col("order_ts") < end, pl.col("status") != "cancelled")
    purchase = pl.col("status") == "completed"
    return (
        o.group_by("customer_id")
        .agg(
            purchase.sum().alias("order_count"),
            pl.when(purchase).then(pl.col("amount")).otherwise(0).sum().alias("monetary_total"),
            pl.col("order_ts").filter(purchase).max().dt.date().alias("last_order_date"),
        )
        .filter(pl.col("order_count") > 0)
        .sort("customer_id")
    )


def test_generate_then_run(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    gen = custval(
        "generate",
        "--orders",
        "20000",
        "--out",
        str(src),
        "--seed",
        "3",
        "--start",
        "2024-01-01",
        "--days",
        "300",
    )
    assert gen.returncode == 0, gen.stderr
    assert "wrote 20,000 orders" in gen.stdout
    snapshot = "2024-08-31"
    wh = tmp_path / "wh"
    res = custval("run", "--source", str(src), "--as-of", snapshot, "--warehouse", str(wh))
    assert res.returncode == 0, res.stderr
    assert "✓ manifest" in res.stdout

    manifest = json.loads((wh / "runs" / f"snapshot_date={snapshot}" / "manifest.json").read_text())
    c = manifest["counts"]
    assert (
        c["rows_in"] == 20_000 == c["rows_accepted"] + c["rows_quarantined"] + c["rows_duplicate"]
    )
    assert set(manifest["stages"]) == {"extract", "validate", "stage", "marts", "publish"}
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 for s in manifest["stages"].values())
    assert manifest["versions"]["duckdb"] and manifest["versions"]["great-expectations"]

    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={snapshot}").sort(
        "customer_id"
    )
    expected = independent_rfm_counts(pl.read_csv(src, try_parse_dates=True), snapshot)
    assert rfm["customer_id"].to_list() == expected["customer_id"].to_list()
    assert rfm["order_count"].to_list() == expected["order_count"].to_list()
    assert rfm["last_order_date"].to_list() == expected["last_order_date"].to_list()
    # published as DECIMAL(18,2), rounded half away from zero: within half a cent
    assert rfm.schema["monetary_total"] == pl.Decimal(18, 2)
    assert rfm["monetary_total"].cast(pl.Float64).to_numpy() == pytest.approx(
        expected["monetary_total"].to_numpy(), rel=1e-12, abs=0.005
    )
    assert not (wh / "_work" / manifest["run_id"]).exists()  # work dir cleaned after success


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--source", "/no/such/file.csv", "--as-of", "2024-01-01", "--warehouse", "W"],
            "no such file or directory",
        ),
        (
            ["run", "--source", "S", "--as-of", "2024-13-45", "--warehouse", "W"],
            "invalid --as-of '2024-13-45': expected YYYY-MM-DD",
        ),
        (
            ["generate", "--orders", "10", "--out", "x.csv", "--start", "nope"],
            "invalid --start 'nope'",
        ),
        (
            ["generate", "--orders", "10", "--out", "x.xlsx", "--format", "xlsx"],
            "unknown --format 'xlsx'",
        ),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    res = custval(*args, cwd=tmp_path)
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_rejected_batch_publishes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    rows = ["order_id,customer_id,order_ts,amount,currency"] + [
        f'O{i},C1,2024-01-01,"1,5",USD' for i in range(10)
    ]
    src.write_text("\n".join(rows) + "\n")
    wh = tmp_path / "wh"
    res = custval("run", "--source", str(src), "--as-of", "2024-01-01", "--warehouse", str(wh))
    assert res.returncode == 1
    assert (
        "quarantined_share failed: 10 of 10 lines quarantined" in res.stderr
        and "nothing published" in res.stderr
    )
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (wh / "marts").exists() and not (wh / "quarantine").exists()
    assert not list((wh / "runs").rglob("manifest.json"))  # only the failure is noted there
    kept = list((wh / "rejected" / "orders").glob("*/quarantine.parquet"))
    assert len(kept) == 1 and pl.read_parquet(kept[0]).height == 10  # kept for inspection


def test_every_command_reads_the_same_environment(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    assert (
        custval("generate", "--orders", "3000", "--out", str(src), "--days", "200").returncode == 0
    )
    day = pl.read_csv(src, try_parse_dates=True)["order_ts"].max().date().isoformat()  # type: ignore[union-attr]
    wh, other = tmp_path / "wh", tmp_path / "other"
    config = tmp_path / "c.yaml"
    config.write_text("predictive:\n  enabled: false\n")
    env = {"CUSTVAL_SOURCE": str(src), "CUSTVAL_WAREHOUSE": str(wh), "CUSTVAL_CONFIG": str(config)}
    res = custval("run", "--as-of", day, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((wh / "runs" / f"snapshot_date={day}" / "manifest.json").read_text())
    assert manifest["config"] == str(config)  # CUSTVAL_CONFIG was read
    # an option wins over the variable
    res = custval("run", "--as-of", day, "--warehouse", str(other), env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (other / "runs" / f"snapshot_date={day}" / "manifest.json").is_file()
    # report, catalog and unlock read CUSTVAL_WAREHOUSE too
    assert (
        custval("report", "--as-of", day, "--out", str(tmp_path / "r.html"), env=env).returncode
        == 0
    )
    assert (tmp_path / "r.html").is_file()
    assert custval("catalog", env=env).returncode == 0
    unlock = custval("unlock", "--as-of", day, env=env)
    assert unlock.returncode == 0, unlock.stderr
    # neither given nor set: one line naming both
    res = custval("run", "--as-of", day, "--source", str(src))
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --warehouse is required: give it, or set CUSTVAL_WAREHOUSE"
    # set but empty is not set (never the current directory)
    res = custval("run", "--as-of", day, "--source", str(src), env={"CUSTVAL_WAREHOUSE": ""})
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --warehouse is required: give it, or set CUSTVAL_WAREHOUSE"


def test_a_missing_hmac_key_stops_the_run_before_any_stage(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    assert custval("generate", "--orders", "500", "--out", str(src)).returncode == 0
    config = tmp_path / "c.yaml"
    config.write_text("privacy:\n  hashed_columns: [email]\n")
    wh = tmp_path / "wh"
    res = custval(
        "run", "--source", str(src), "--as-of", "2025-01-01", "--warehouse", str(wh),
        "--config", str(config),
    )  # fmt: skip
    assert res.returncode != 0
    assert "HMAC key is missing" in res.stderr and "Traceback" not in res.stderr
    assert "extract" not in res.stdout  # no stage ran
    assert not (wh / "raw").exists()  # nothing was landed


def test_run_warnings_are_log_records_text_or_json(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    assert (
        custval("generate", "--orders", "2000", "--out", str(src), "--days", "120").returncode == 0
    )
    day = pl.read_csv(src, try_parse_dates=True)["order_ts"].max().date().isoformat()  # type: ignore[union-attr]
    config = tmp_path / "c.yaml"
    config.write_text("predictive:\n  min_history_days: 5000\n")  # a warning: models skipped
    args = ["run", "--source", str(src), "--as-of", day, "--config", str(config)]
    text = custval(*args, "--warehouse", str(tmp_path / "a"))
    assert text.returncode == 0, text.stderr[-3000:]
    manifest = json.loads(
        (tmp_path / "a" / "runs" / f"snapshot_date={day}" / "manifest.json").read_text()
    )
    assert manifest["warnings"]
    # each of the run's warnings once, as a `warning:` line
    assert text.stderr.strip().splitlines() == [f"warning: {w}" for w in manifest["warnings"]]

    res = custval("--log-format", "json", *args, "--warehouse", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr[-3000:]
    records = [json.loads(line) for line in res.stderr.strip().splitlines()]  # every line JSON
    stages = [
        r["stage"] for r in records if r["logger"] == "pipelines.run.pipeline" and "stage" in r
    ]
    assert stages == ["extract", "validate", "stage", "marts", "publish", "manifest"]
    assert all(r["snapshot_date"] == day and r["run_id"] for r in records if "stage" in r)
    # progress inside the marts stage: one record a model, in the order they were built
    built = [r for r in records if r["logger"] == "pipelines.transform.marts" and "seconds" in r]
    other = json.loads(
        (tmp_path / "b" / "runs" / f"snapshot_date={day}" / "manifest.json").read_text()
    )
    assert [r["message"].split()[1] for r in built] == list(other["model_seconds"])
    assert f"({len(built)} of {len(built)})" in built[-1]["message"]
    warned = [r["message"] for r in records if r["level"] == "WARNING"]
    assert len(warned) == len(manifest["warnings"]) and all("min_history_days" in w for w in warned)
    bad = custval("--log-format", "xml", "catalog", "--warehouse", str(tmp_path / "a"))
    assert bad.returncode == 2 and "unknown --log-format" in bad.stderr


def test_version_is_the_installed_package_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    import pipelines

    res = custval("--version", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == f"custval {version('custval')}"
    assert version("custval") == pipelines.__version__  # pyproject and the package agree


def test_demo_prints_a_summary(tmp_path: Path) -> None:
    res = custval("demo", "--dir", str(tmp_path / "demo"), "--orders", "20000", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (
        "Customers per RFM segment" in res.stdout and "Top customers by net revenue" in res.stdout
    )
    assert "champions" in res.stdout
    assert (tmp_path / "demo" / "warehouse" / "marts" / "customer_clv").is_dir()
    # the journey line's counts are the published journey_summary's
    summary = pl.read_parquet(tmp_path / "demo" / "warehouse" / "marts" / "journey_summary")
    row = summary.row(0, named=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("journey:"))
    assert f"{row['one_time_customers']:,} one-time" in line
    assert f"{row['high_value_customers']:,} high-value" in line


def test_bench_prints_seconds_and_memory_per_stage(tmp_path: Path) -> None:
    """Sharded, so it also prints each phase and each worker process (issue 17's figures)."""
    res = custval(
        "bench",
        *("--orders", "5000", "--workdir", str(tmp_path / "bench")),
        *("--shards", "3", "--workers", "2"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    measured = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(measured["stages"]) == {"extract", "validate", "stage", "marts", "publish"}
    assert measured["counts"]["rows_in"] == 5000
    assert all(m["peak_rss_mb"] > 0 for m in measured["stages"].values())
    sharding = measured["sharding"]
    assert sharding["shards"] == 3 and sharding["pool_processes"] == 2
    kinds = [p["kind"] for p in sharding["phases"]]
    assert kinds == ["shard", "global", "shard", "global"]
    parts = [part for p in sharding["phases"] for part in p.get("parts", [])]
    assert sorted(part["shard"] for part in parts) == [0, 0, 1, 1, 2, 2]  # each shard, each phase
    assert all(p["seconds"] > 0 and p["peak_rss_mb"] > 0 for p in sharding["phases"][1::2])
    workers = sharding["workers"]  # the pool's processes: every part ran on one of them
    assert 1 <= len(workers) <= 2 and sum(w["parts"] for w in workers) == len(parts)
    assert all(w["peak_rss_mb"] > 0 for w in workers)
    assert "sharded marts: 3 shards" in res.stdout
    assert (measured["memory_limit"], measured["duckdb_share"]) == ("3GB", 0.5)
    assert "within a budget of 3GB" in res.stdout


def test_backfill_runs_each_date_with_a_result_line(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    assert (
        custval(
            "generate", "--orders", "3000", "--out", str(src), "--seed", "5", "--days", "365"
        ).returncode
        == 0
    )
    wh = tmp_path / "wh"
    res = custval(
        "backfill",
        "--start",
        "2024-12-28",
        "--end",
        "2024-12-30",
        "--source",
        str(src),
        "--warehouse",
        str(wh),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if line.strip().startswith("✓")]
    assert [line.split()[1] for line in lines] == ["2024-12-28", "2024-12-29", "2024-12-30"]
    assert "3,000 in" in lines[0] and "customers" in lines[0]
    for day in ("2024-12-28", "2024-12-29", "2024-12-30"):
        assert (wh / "runs" / f"snapshot_date={day}" / "manifest.json").is_file()
    bad = custval(
        "backfill",
        "--start",
        "2024-12-30",
        "--end",
        "2024-12-28",
        "--source",
        str(src),
        "--warehouse",
        str(wh),
    )
    assert bad.returncode == 2 and "--end 2024-12-28 is before --start 2024-12-30" in bad.stderr
