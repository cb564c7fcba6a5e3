"""What each reader makes of the published files: money as DECIMAL, and `snapshot_date`.

Two snapshots are published from a generated history, then every table with money is read
the ways the README names -- DuckDB (`read_parquet` with hive partitioning, the README's glob,
and the catalog `DIR/custval.duckdb`), Polars (`scan_parquet` of the table directory),
`pyarrow.dataset`, `pyarrow.parquet.read_table`, pandas and Spark (in its own environment, one
session). Every money column must come back as a decimal with its contract's precision and scale
in every reader, with the same values; `snapshot_date`, which is the partition directory and not
a column of the files, comes back as the type the README's reader table says for each reader.
The README's list of money columns is checked against the files too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import REPO, require

from pipelines.contracts import load_contract
from pipelines.transform.marts import load_models

MARTS = sorted(m.published_name for m in load_models().values() if m.published_name)
DATE_PARTITIONING = ds.partitioning(pa.schema([("snapshot_date", pa.date32())]), flavor="hive")


pytestmark = pytest.mark.slow


def _money(table: str) -> dict[str, tuple[int, int]]:
    """The table's DECIMAL columns from its contract: name -> (precision, scale)."""
    return {c.name: c.decimal for c in load_contract(table).columns if c.decimal is not None}


MONEY = {t: _money(t) for t in MARTS if _money(t)}


@pytest.fixture(scope="module")
def published(
    generated_orders: tuple[Path, pl.DataFrame, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    source, _, last_day = generated_orders
    wh = tmp_path_factory.mktemp("reader_types") / "wh"
    days = [date(2024, 9, 30), last_day]
    for day in days:
        manifest = run_all(RunContext.create(source=str(source), snapshot_date=day, warehouse=wh))
        assert manifest["status"] == "success", manifest.get("error")
    return {"wh": wh, "days": days}


def _dir(published: dict[str, Any], table: str) -> Path:
    return published["wh"] / "marts" / table


def _duckdb_totals(published: dict[str, Any], table: str) -> dict[str, Decimal | None]:
    """Per money column, its sum over both snapshots (exact, as DuckDB sums DECIMAL)."""
    files = f"{_dir(published, table)}/*/*.parquet"
    sums = ", ".join(f'sum("{c}")' for c in MONEY[table])
    row = duckdb.sql(f"select {sums} from read_parquet('{files}', hive_partitioning = true)")
    return dict(zip(MONEY[table], row.fetchall()[0]))


def test_every_contract_money_column_is_money() -> None:
    """The decisions: amounts DECIMAL(18,2), money per order or customer DECIMAL(18,4)."""
    assert {"customer_rfm", "customer_clv", "kpi_summary", "segment_summary"} <= set(MONEY)
    assert MONEY["customer_rfm"] == {"monetary_total": (18, 2), "avg_order_value": (18, 4)}
    assert MONEY["kpi_summary"]["net_revenue"] == (18, 2)
    assert MONEY["customer_clv"]["predicted_clv_365"] == (18, 2)
    assert MONEY["customer_clv"]["cac"] == (18, 4)
    # ratios, probabilities, expected counts and model parameters stay DOUBLE
    for table, column in (
        ("customer_clv", "p_alive"),
        ("customer_clv", "ltv_cac_ratio"),
        ("customer_clv", "expected_purchases_365"),
        ("kpi_summary", "revenue_share_a"),
        ("kpi_summary", "model_alive_customers"),
        ("model_fit", "value"),
    ):
        assert load_contract(table).column(column).physical_type == "DOUBLE", (table, column)


@pytest.mark.slow
def test_the_files_hold_the_contract_types(published: dict[str, Any]) -> None:
    for table in MARTS:
        parts = sorted(_dir(published, table).iterdir())
        assert [p.name for p in parts] == [f"snapshot_date={d}" for d in published["days"]]
        for part in parts:
            schema = pq.read_schema(part / "part-0.parquet")
            assert "snapshot_date" not in schema.names  # only the directory holds it
            decimals = {
                f.name: (f.type.precision, f.type.scale)
                for f in schema
                if pa.types.is_decimal(f.type)
            }
            assert decimals == MONEY.get(table, {}), (table, part.name)
            assert not any(pa.types.is_floating(schema.field(c).type) for c in decimals)
        assert not (_dir(published, table) / "_common_metadata").exists()


def test_duckdb_reads_decimals_and_a_date(published: dict[str, Any]) -> None:
    for table, money in MONEY.items():
        files = f"{_dir(published, table)}/*/*.parquet"
        for query in (
            f"select * from read_parquet('{files}', hive_partitioning = true)",
            f"select * from '{files}'",  # the README's form: hive partitioning auto-detected
        ):
            types = {r[0]: r[1] for r in duckdb.sql(f"describe {query}").fetchall()}
            assert types["snapshot_date"] == "DATE", (table, query)
            for column, (p, s) in money.items():
                assert types[column] == f"DECIMAL({p},{s})", (table, column, query)
        days = duckdb.sql(f"select distinct snapshot_date from '{files}' order by 1").fetchall()
        assert [d for (d,) in days] == published["days"]


def test_the_catalog_views_have_decimals_and_a_date(published: dict[str, Any]) -> None:
    con = duckdb.connect(str(published["wh"] / "custval.duckdb"), read_only=True)
    try:
        for table, money in MONEY.items():
            for view in (table, f"{table}_latest"):
                types = {r[0]: r[1] for r in con.sql(f"describe select * from {view}").fetchall()}
                assert types["snapshot_date"] == "DATE", view
                for column, (p, s) in money.items():
                    assert types[column] == f"DECIMAL({p},{s})", (view, column)
            sums = ", ".join(f'sum("{c}")' for c in money)
            row = con.sql(f"select {sums} from {table}").fetchall()[0]
            assert dict(zip(money, row)) == _duckdb_totals(published, table), table
    finally:
        con.close()


def test_polars_reads_decimals_and_a_date(published: dict[str, Any]) -> None:
    for table, money in MONEY.items():
        lazy = pl.scan_parquet(_dir(published, table))  # a directory: hive partitioning on
        schema = lazy.collect_schema()
        assert schema["snapshot_date"] == pl.Date, table
        for column, (p, s) in money.items():
            assert schema[column] == pl.Decimal(p, s), (table, column)
        frame = lazy.collect()
        assert sorted(frame["snapshot_date"].unique()) == published["days"]
        totals = frame.select(pl.col(list(money)).sum()).row(0)
        assert dict(zip(money, totals)) == _with_zero(_duckdb_totals(published, table)), table


def _with_zero(totals: dict[str, Decimal | None]) -> dict[str, Decimal]:
    """Sums as dataframe libraries give them: an all-null column sums to 0."""
    return {k: Decimal(0) if v is None else v for k, v in totals.items()}


def test_pyarrow_reads_decimals_and_a_string_key(published: dict[str, Any]) -> None:
    for table, money in MONEY.items():
        path = str(_dir(published, table))
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        read = pq.read_table(path)
        typed = ds.dataset(path, format="parquet", partitioning=DATE_PARTITIONING)
        for column, (p, s) in money.items():
            for schema in (dataset.schema, read.schema, typed.schema):
                assert schema.field(column).type == pa.decimal128(p, s), (table, column)
        assert dataset.schema.field("snapshot_date").type == pa.string()
        assert read.schema.field("snapshot_date").type == pa.dictionary(pa.int32(), pa.string())
        assert typed.schema.field("snapshot_date").type == pa.date32()
        assert set(typed.to_table(columns=["snapshot_date"]).column(0).to_pylist()) == set(
            published["days"]
        )
        got = {c: pc.sum(read.column(c)).as_py() for c in money}
        assert got == _duckdb_totals(published, table), table


def test_pandas_reads_decimals_and_a_categorical_key(published: dict[str, Any]) -> None:
    for table, money in MONEY.items():
        path = _dir(published, table)
        frame = pd.read_parquet(path)
        key = frame["snapshot_date"]
        assert isinstance(key.dtype, pd.CategoricalDtype), table
        assert sorted(key.cat.categories) == [d.isoformat() for d in published["days"]]
        for column, (_, s) in money.items():
            assert frame[column].dtype == object, (table, column)
            values = frame[column].dropna()
            assert all(isinstance(v, Decimal) for v in values), (table, column)
            assert {v.as_tuple().exponent for v in values} <= {-s}, (table, column)
        got = {c: sum(frame[c].dropna(), Decimal(0)) for c in money}
        assert got == _with_zero(_duckdb_totals(published, table)), table

        arrow = pd.read_parquet(path, dtype_backend="pyarrow")
        for column, (p, s) in money.items():
            assert arrow[column].dtype == pd.ArrowDtype(pa.decimal128(p, s)), (table, column)
        dated = pd.read_parquet(path, partitioning=DATE_PARTITIONING)
        assert set(dated["snapshot_date"]) == set(published["days"])


# ------------------------------------------------------------------------------------------
# Spark, in its own environment: Great Expectations imports pyspark whenever it is installed
# (slower, and it changes how GX starts), so pyspark stays out of the project's environment and
# `uv run --with` gives the probe one of its own (cached by uv after the first download).

SPARK = "pyspark==4.3.0"
SPARK_PROBE = """
import json, sys
from pyspark.sql import SparkSession, functions as F
tables = json.loads(sys.argv[1])
spark = (
    SparkSession.builder.master("local[1]").appName("custval-reader-types")
    .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
    .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    .config("spark.sql.session.timeZone", "UTC").getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
out = {}
for table, (path, money) in tables.items():
    frame = spark.read.parquet(path)
    row = frame.agg(
        *(F.sum(c).alias(c) for c in money), F.collect_set("snapshot_date").alias("days")
    ).collect()[0]
    out[table] = {
        "types": {f.name: f.dataType.simpleString() for f in frame.schema.fields},
        "sums": {c: None if row[c] is None else str(row[c]) for c in money},
        "days": sorted(d.isoformat() for d in row["days"]),
    }
spark.stop()
print("SPARK-RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_spark_reads_decimals_and_a_date(published: dict[str, Any]) -> None:
    uv = shutil.which("uv")
    java = os.environ.get("JAVA_HOME") or shutil.which("java")
    require(uv is not None, "uv is not on PATH (Spark's environment is made with uv run --with)")
    require(java is not None, "no Java runtime for Spark (java on PATH or JAVA_HOME)")
    assert uv is not None
    tables = {t: [str(_dir(published, t)), list(money)] for t, money in MONEY.items()}
    res = subprocess.run(
        [uv, "run", "--isolated", "--no-project", "--with", SPARK, "python", "-c", SPARK_PROBE]
        + [json.dumps(tables)],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))
        },
    )
    lines = [x for x in res.stdout.splitlines() if x.startswith("SPARK-RESULT ")]
    assert res.returncode == 0 and lines, res.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("SPARK-RESULT "))
    for table, money in MONEY.items():
        got = result[table]
        assert got["types"]["snapshot_date"] == "date", table
        for column, (p, s) in money.items():
            assert got["types"][column] == f"decimal({p},{s})", (table, column)
        assert got["days"] == [d.isoformat() for d in published["days"]], table
        sums = {c: None if v is None else Decimal(v) for c, v in got["sums"].items()}
        assert sums == _duckdb_totals(published, table), table


# ------------------------------------------------------------------------------------------
# The README says the same


def test_the_readme_lists_the_money_columns_the_files_hold(published: dict[str, Any]) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "`DECIMAL(18,2)`" in line and "|" in line)
    types = [re.search(r"`(DECIMAL\(\d+,\d+\))`", cell) for cell in lines[header].split("|")[2:-1]]
    listed: dict[str, dict[str, tuple[int, int]]] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = line.split("|")[1:-1]
        table = cells[0].strip().strip("`")
        for kind, cell in zip(types, cells[1:], strict=True):
            assert kind is not None
            p, s = re.findall(r"\d+", kind.group(1))
            for column in re.findall(r"`([a-z_0-9]+)`", cell):
                listed.setdefault(table, {})[column] = (int(p), int(s))
    held = {}
    for table in MARTS:
        schema = pq.read_schema(next(_dir(published, table).glob("*/part-0.parquet")))
        decimals = {
            f.name: (f.type.precision, f.type.scale) for f in schema if pa.types.is_decimal(f.type)
        }
        if decimals:
            held[table] = decimals
    assert listed == held
