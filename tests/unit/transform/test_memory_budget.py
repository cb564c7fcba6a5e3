"""The run's memory budget: `resources` in the config reaches every DuckDB connection.

DuckDB spills to `temp_directory` only what outgrows `memory_limit`; a budget that is not
applied shows as an unspilled table here, and a spill directory that is not set as files in
the process's working directory instead of the run's work directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config
from pipelines.transform.marts import connect

pytestmark = pytest.mark.unit


def _budget(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budget.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_a_laptop_budget() -> None:
    resources = load_config().resources
    assert resources.memory_limit == "3GB"
    assert resources.duckdb_share == 0.5  # DuckDB 1.5GB; the rest is the process's own
    assert resources.threads is None
    assert resources.validation_slice_rows == 1_000_000


@pytest.mark.slow
def test_connection_takes_the_budget_and_spills_into_the_run_dir(tmp_path: Path) -> None:
    config = load_config(_budget(tmp_path, "resources:\n  memory_limit: 64MB\n  threads: 1\n"))
    spill = tmp_path / "work" / "spill"
    con = connect(config.resources, spill)
    try:
        limit, threads, temp = con.sql(
            "select current_setting('memory_limit'), current_setting('threads'),"
            " current_setting('temp_directory')"
        ).fetchall()[0]
        assert (limit, int(threads), temp) == ("30.5 MiB", 1, str(spill))  # half of 64MB
        # ~130 MB of rows: more than DuckDB's share holds, so it must spill them to `spill`
        con.execute("create table t as select i, md5(i::varchar) as h from range(2000000) r(i)")
        spilled = con.sql("select count(*), coalesce(sum(size), 0) from duckdb_temporary_files()")
        files, size = spilled.fetchall()[0]
        assert files > 0 and size > 0
        assert any(p.name.startswith("duckdb_temp") for p in spill.iterdir())
        # and the work is still right: every row, in order, through the spilled blocks
        assert con.sql("select count(distinct h), max(i) from t").fetchall() == [
            (2_000_000, 1_999_999)
        ]
    finally:
        con.close()


def test_without_a_budget_the_connection_is_unchanged() -> None:
    con = connect()
    try:
        (threads,) = con.sql("select current_setting('threads')").fetchall()[0]
        assert int(threads) >= 1
    finally:
        con.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("memory_limit: lots", "give a size such as 4GB"),
        ("memory_limit: 0GB", "give a size such as 4GB"),
        ("memory_limit: 150%", "at most 100%"),
        ("memory_limit: 4GB; drop table x", "give a size such as 4GB"),
        ("threads: 0", "threads must be at least 1"),
        ("duckdb_share: 0", "give a share in"),
        ("duckdb_share: 1.5", "give a share in"),
        ("validation_slice_rows: 10", "validation_slice_rows must be at least 1000"),
    ],
)
def test_a_bad_budget_is_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_budget(tmp_path, f"resources:\n  {text}\n"))


def test_duckdb_takes_its_share_of_the_budget(tmp_path: Path) -> None:
    config = load_config(
        _budget(tmp_path, "resources:\n  memory_limit: 2GB\n  duckdb_share: 0.25\n")
    )
    con = connect(config.resources)
    try:
        (limit,) = con.sql("select current_setting('memory_limit')").fetchall()[0]
    finally:
        con.close()
    assert limit == "476.8 MiB"  # 0.25 x 2 GB = 500 MB, as DuckDB prints it


def test_share_of_memory_is_accepted(tmp_path: Path) -> None:
    config = load_config(_budget(tmp_path, "resources:\n  memory_limit: 50%\n"))
    con = connect(config.resources)
    try:
        (limit,) = con.sql("select current_setting('memory_limit')").fetchall()[0]
        assert limit.endswith("GiB") or limit.endswith("MiB")
    finally:
        con.close()
