"""int_customer_rfm_scores_daily before and after the per-value rank, on the same synthetic days.

The earlier model (long measures: one row per day, customer and score; rank() windows and a
pivot) is read from git at REV; the current one from sql/. Both score the same customer-days in
one DuckDB process, twice each, and the script prints the best times, their ratio and the
number of rows that differ (0: the same rows).

    uv run python benchmarks/rfm_scoring.py --customers 600000 --rev 4cb5ad8
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import duckdb

MODEL = "sql/intermediate/int_customer_rfm_scores_daily.sql"
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=600_000)
    parser.add_argument("--days", type=int, default=8, help="the snapshot and its lookback days")
    parser.add_argument("--rev", default="4cb5ad8", help="a commit with the long-format model")
    args = parser.parse_args()
    old = subprocess.run(
        ["git", "show", f"{args.rev}:{MODEL}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    new = (REPO / MODEL).read_text()
    con = duckdb.connect()
    con.execute("set threads = 2")
    con.execute(
        f"""
        create table wide as
        select
            date '2025-12-30' - d::integer as as_of,
            'c' || c as customer_id,
            d = 0 as is_snapshot,
            -((hash(c, d) % 700)::integer) as r_measure,
            1 + (hash(c, 7) % 5)::bigint + (d = 0)::integer as f_measure,
            case when d = 0 then ((hash(c) % 100000) / 100.0)::decimal(18, 2) end as m_measure
        from range({args.customers}) as customers(c), range({args.days}) as days(d)
        """
    )
    con.execute(
        """
        create table long as
        select as_of, customer_id, 'r' as score_name, r_measure as measure from wide
        union all select as_of, customer_id, 'f', f_measure from wide
        union all select as_of, customer_id, 'm', m_measure from wide where is_snapshot
        """
    )
    con.execute(  # the default config: R and M by quantile, F by breakpoints 2, 3, 4, 6
        """
        create table cfg_rfm_scoring as
        select * from (values ('f', 'breakpoints', 2.0), ('f', 'breakpoints', 3.0),
            ('f', 'breakpoints', 4.0), ('f', 'breakpoints', 6.0), ('m', 'quantile', null),
            ('r', 'quantile', null)) as t(score_name, method, bound)
        """
    )
    best: dict[str, float] = {}
    for _ in range(2):
        for name, sql, table in (("old", old, "long"), ("new", new, "wide")):
            query = sql.replace("$rfm_bins", "5").replace("int_customer_rfm_measures", table)
            con.execute(f"drop table if exists out_{name}")
            started = time.perf_counter()
            con.execute(f"create table out_{name} as {query}")
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    differ = con.execute(
        """
        select count(*) from (
            (select * from out_old except all select * from out_new)
            union all
            (select * from out_new except all select * from out_old)
        )
        """
    ).fetchone()
    rows = con.execute("select count(*) from out_new").fetchone()
    print(
        f"{args.customers:,} customers x {args.days} days = {rows[0] if rows else 0:,} rows: "
        f"old {best['old']:.2f} s, new {best['new']:.2f} s, {best['old'] / best['new']:.1f}x; "
        f"rows differing: {differ[0] if differ else '?'}"
    )


if __name__ == "__main__":
    main()
