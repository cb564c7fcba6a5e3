"""Marts: run the SQL models in `sql/` with DuckDB, in dependency order, in one connection.

A model is one `.sql` file holding one `select` (dbt style: input CTEs, one CTE per step, a
final select). Its name is the file stem; its layer is the name's prefix (`stg_`, `int_`,
`mart_`). Dependencies are the other model names a file mentions. Each model is materialised
as a table unless its header says `-- Materialized: view` (cheap staging projections: DuckDB
then plans them into every query that reads them); DuckDB cannot parameterise views, so a
model with parameters is a table. Run-time values are named parameters such as
`$snapshot_date`, and a model gets exactly the parameters it mentions.

`mart_<table>` models are the published tables: each is conformed to its contract
`data_contracts/<table>.yaml` (columns, types, descriptions) and written to the run's work
dir, then checked against the suite its contract generates (`validate/mart_checks.py`: a
failed rule stops the run here, before anything is published), ready for the publish stage
to swap into place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.config import Config
from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.engines import BuildConnection, connect, release_memory, scan_parquet
from pipelines.errors import CustvalError
from pipelines.memory import measure
from pipelines.publish.tables import grain_error, write_conformed_batches
from pipelines.resources import sql_dir
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.validate.mart_checks import check_marts
from pipelines.validate.reference_data import marketing_spend

if TYPE_CHECKING:
    from pipelines.predictive.predictive import Predictive

LAYERS = ("stg", "int", "mart")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")
_MATERIALIZED = re.compile(r"^--\s*Materialized:\s*(table|view)\b", re.MULTILINE | re.IGNORECASE)
# A model's last line may order its rows (`order by final.customer_id`). A table's rows are then
# built first and sorted in a second statement over them: DuckDB could not spill a sort fed by
# a join of several customer tables (at 10M orders with 200 MB, as at 100M with 2 GB), and
# sorts a built table within its budget.
_FINAL_ORDER = re.compile(r"\n(order by [^\n]+?)\s*$", re.IGNORECASE)

log = logging.getLogger(__name__)


class ModelError(CustvalError):
    """A SQL model is malformed or failed to run."""


@dataclass(frozen=True)
class SqlModel:
    name: str
    path: Path
    sql: str
    depends_on: frozenset[str]
    params: frozenset[str]
    materialized: str = "table"

    @property
    def layer(self) -> str:
        return self.name.split("_", 1)[0]

    @property
    def published_name(self) -> str | None:
        return self.name.removeprefix("mart_") if self.layer == "mart" else None


# A Python model computes a table from earlier ones (e.g. fitted predictions); it registers
# under its name like a SQL model. name -> (dependencies, function(con, params) -> its rows:
# an Arrow table, or a batch reader DuckDB streams)
PythonModel = tuple[
    frozenset[str],
    Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pa.Table | pa.RecordBatchReader],
]


def load_models(directory: Path | None = None) -> dict[str, SqlModel]:
    directory = directory or sql_dir()
    paths = sorted(directory.rglob("*.sql"))
    names = [p.stem for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelError(f"SQL model names must be unique: {dupes}")
    models = {}
    for path in paths:
        if path.stem.split("_", 1)[0] not in LAYERS:
            raise ModelError(f"{path}: a model name starts with one of {LAYERS} + '_'")
        text = path.read_text(encoding="utf-8").strip().rstrip(";")
        code = _COMMENT.sub("", text)
        found = _MATERIALIZED.search(text)
        materialized = found.group(1).lower() if found else "table"
        params = frozenset(_PARAM.findall(code))
        if materialized == "view" and params:
            raise ModelError(
                f"{path}: DuckDB cannot parameterise a view; materialize it as a table"
            )
        models[path.stem] = SqlModel(path.stem, path, text, frozenset(), params, materialized)
    for name, model in models.items():
        code = _COMMENT.sub("", model.sql)
        deps = {other for other in models if other != name and re.search(rf"\b{other}\b", code)}
        models[name] = replace(model, depends_on=frozenset(deps))
    return models


def dependencies(
    models: dict[str, SqlModel], python_models: dict[str, PythonModel] | None = None
) -> dict[str, set[str]]:
    """Each model's inputs among the models (SQL and Python); sources are not models."""
    graph: dict[str, set[str]] = {n: set(m.depends_on) for n, m in models.items()}
    for name, (deps, _) in (python_models or {}).items():
        graph[name] = set(deps)
    for name, model in models.items():  # SQL may read Python models' tables too
        graph[name] |= {
            p for p in (python_models or {}) if re.search(rf"\b{p}\b", _COMMENT.sub("", model.sql))
        }
    return graph


def build_order(
    models: dict[str, SqlModel], python_models: dict[str, PythonModel] | None = None
) -> list[str]:
    try:
        return list(TopologicalSorter(dependencies(models, python_models)).static_order())
    except CycleError as exc:
        raise ModelError(f"SQL models depend on each other in a cycle: {exc.args[1]}") from None


def model_params(config: Config, snapshot_date: date) -> dict[str, Any]:
    """Every value a model may reference as `$name` (config values keep their documented names)."""
    return {
        "snapshot_date": snapshot_date.isoformat(),
        "rfm_bins": config.rfm.bins,
        "abc_a_share": config.abc.a_share,
        "abc_b_share": config.abc.b_share,
        "loyalty_window_days": config.loyalty.window_days,
        "lifecycle_new_days": config.lifecycle.new_days,
        "lifecycle_at_risk_factor": config.lifecycle.at_risk_factor,
        "lifecycle_lapsed_factor": config.lifecycle.lapsed_factor,
        "lifecycle_loyal_min_purchase_days": config.lifecycle.loyal_min_purchase_days,
        "lifecycle_one_time_gap_days": config.lifecycle.one_time_gap_days,
        "active_days": config.activity.active_days,
        "gross_margin": config.clv.gross_margin,
        "servicing_cost_per_order": config.clv.servicing_cost_per_order,
        "discount_rate": config.clv.discount_rate,
        "clv_retention_rate": config.clv.retention_rate,
        "retention_period_days": config.clv.retention_period_days,
        "clv_expected_lifetime_years": config.clv.expected_lifetime_years,
        "clv_frequency_prior_days": config.clv.frequency_prior_days,
        "ltv_cac_break_even": config.clv.ltv_cac_thresholds.break_even,
        "ltv_cac_benchmark": config.clv.ltv_cac_thresholds.benchmark,
        "ltv_cac_generous": config.clv.ltv_cac_thresholds.generous,
        "transition_lookback_days": config.rfm.transition_lookback_days,
        "journey_high_value_rule": config.journey.high_value.rule,
        "journey_high_value_classes": config.journey.high_value.abc_classes,
        "journey_high_value_tiers": config.journey.high_value.loyalty_tiers,
        "journey_min_clv_percentile": config.journey.high_value.min_clv_percentile,
        "journey_recent_orders": config.journey.recent_orders,
        "journey_repeat_window_days": config.journey.repeat_window_days,
        "journey_high_value_window_days": config.journey.high_value_window_days,
        "backtest_holdout_days": config.predictive.backtest_holdout_days,
        "backtest_calibration_date": (
            snapshot_date - timedelta(days=config.predictive.backtest_holdout_days)
        ).isoformat(),
    }


def config_tables(config: Config) -> dict[str, pl.DataFrame]:
    """Rule tables from the config, joined by the SQL models like any source."""
    bins = range(1, config.rfm.bins + 1)
    cells = [(r, f, config.rfm.segment_of(r, f)) for r in bins for f in bins]
    tiers = config.loyalty.tiers
    scoring = [
        (name, method, bound)
        for name, method in sorted(config.rfm.scoring.items())
        for bound in (config.rfm.breakpoints[name] if method == "breakpoints" else [None])
    ]
    return {
        # how each RFM score is computed; one row per breakpoint for the breakpoints method
        "cfg_rfm_scoring": pl.DataFrame(
            scoring,
            schema={"score_name": pl.String, "method": pl.String, "bound": pl.Float64},
            orient="row",
        ),
        # every (r, f) score cell with the segment of the first rule that holds it
        "cfg_rfm_cells": pl.DataFrame(
            cells, schema=["r_score", "f_score", "segment"], orient="row"
        ),
        "cfg_loyalty_tiers": pl.DataFrame(
            {
                "priority": list(range(1, len(tiers) + 1)),
                "tier": [t.tier for t in tiers],
                "min_spend": [float(t.min_spend) for t in tiers],
                "min_orders": [t.min_orders for t in tiers],
            }
        ),
        "source_marketing_spend": marketing_spend(config.marketing_spend),
    }


def build_models(
    con: duckdb.DuckDBPyConnection | BuildConnection,
    params: dict[str, Any],
    models: dict[str, SqlModel] | None = None,
    python_models: dict[str, PythonModel] | None = None,
    targets: set[str] | None = None,
) -> dict[str, float]:
    """Materialise every model (or only `targets` and what they need); seconds per model.

    On a `BuildConnection` the connection may be reopened between models (`relieve`); read
    the tables from its `con` afterwards.
    """
    models = models if models is not None else load_models()
    python_models = python_models or {}
    order = build_order(models, python_models)
    if targets is not None:
        needed = _closure(targets, models, python_models)
        order = [name for name in order if name in needed]
    return build_named(con, order, params, models, python_models)


def build_named(
    con: duckdb.DuckDBPyConnection | BuildConnection,
    names: list[str],
    params: dict[str, Any],
    models: dict[str, SqlModel],
    python_models: dict[str, PythonModel] | None = None,
) -> dict[str, float]:
    """Materialise exactly `names`, in that order (their inputs exist already); seconds each.

    A sharded build runs the models phase by phase, each phase's inputs made by earlier ones.
    """
    build = con if isinstance(con, BuildConnection) else BuildConnection.fixed(con)
    seconds: dict[str, float] = {}
    for done, name in enumerate(names, start=1):
        with measure() as m:
            _build_one(build.con, name, params, models, python_models or {})
        seconds[name] = round(m.seconds, 3)
        build.peak_rss_mb[name] = round(m.peak_rss_mb, 1)
        build.relieve()
        # progress of a stage that runs for minutes: Airflow's task log and the CLI's live line
        log.info(
            "model %s built in %.1f s (%d of %d), peak RSS %.0f MB",
            name,
            m.seconds,
            done,
            len(names),
            m.peak_rss_mb,
            extra={"progress": f"{done}/{len(names)} models, {name} built", "seconds": m.seconds},
        )
    return seconds


def _closure(
    targets: set[str], models: dict[str, SqlModel], python_models: dict[str, PythonModel]
) -> set[str]:
    unknown = targets - models.keys() - python_models.keys()
    if unknown:
        raise ModelError(f"no such model(s): {sorted(unknown)}")
    needed: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in models:  # SQL models may read Python models' tables too
            code = _COMMENT.sub("", models[name].sql)
            deps = set(models[name].depends_on)
            deps |= {p for p in python_models if re.search(rf"\b{p}\b", code)}
        else:
            deps = set(python_models[name][0])
        todo.extend(deps)
    return needed


def _build_one(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: dict[str, Any],
    models: dict[str, SqlModel],
    python_models: dict[str, PythonModel],
) -> None:
    if name in python_models:
        table = python_models[name][1](con, params)
        con.register(f"_{name}_arrow", table)
        con.execute(f"create or replace table {name} as select * from _{name}_arrow")
        con.unregister(f"_{name}_arrow")
        release_memory()  # the model's Arrow and Polars frames, before the next query
        return
    model = models[name]
    missing = sorted(model.params - params.keys())
    if missing:
        raise ModelError(
            f"{model.path}: unknown parameter(s) {', '.join('$' + m for m in missing)}"
        )
    values = {k: params[k] for k in model.params}
    code = _COMMENT.sub("", model.sql).rstrip()
    try:
        order = _sorted_apart(con, model, code, values)
        if order is None:
            con.execute(f"create or replace {model.materialized} {name} as\n{model.sql}", values)
            return
        # a temporary table: in memory while it fits, spilled when not, never in the build
        # file's WAL beside the sorted copy (a 12 MB disk ran out when both were written there)
        rows = f"{name}__rows"
        con.execute(f"create or replace temp table {rows} as\n{code[: order.start()]}", values)
        con.execute(f"create or replace table {name} as select * from {rows} as final {order[1]}")
        con.execute(f"drop table {rows}")
    except duckdb.Error as exc:
        raise ModelError(f"{model.path}: {str(exc).splitlines()[0]}") from None


def _sorted_apart(
    con: duckdb.DuckDBPyConnection, model: SqlModel, code: str, values: dict[str, Any]
) -> re.Match[str] | None:
    """The last-line `order by` of a table model whose rows have every column it sorts by
    (`mart_model_backtest` sorts by one it does not output: built in one statement)."""
    order = _FINAL_ORDER.search(code) if model.materialized == "table" else None
    if order is None:
        return None
    keys = {
        key.split()[0].removeprefix("final.") for key in order[1][len("order by ") :].split(",")
    }
    columns = {
        row[0] for row in con.execute(f"describe {code[: order.start()]}", values).fetchall()
    }
    return order if keys <= columns else None


def register_sources(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    orders: str | Path | pl.DataFrame,
    until: date | None = None,
) -> None:
    """Register the staged orders (a Parquet path or a frame) and the config tables.

    With `until`, `source_orders` holds only the orders placed before the end of that day (UTC),
    as a snapshot of that date would: the cut-off of the stage step, applied to these orders.
    """
    name = "source_orders" if until is None else "_staged_orders"
    if isinstance(orders, pl.DataFrame):
        con.register(name, orders)
    else:
        scan_parquet(con, name, [orders])
    if until is not None:
        end = (until + timedelta(days=1)).isoformat()  # a date: nothing to quote
        con.execute(
            "create or replace view source_orders as select * from _staged_orders "
            f"where order_ts < timestamptz '{end} 00:00:00+00'"
        )
    for table, frame in config_tables(config).items():
        con.register(table, frame)


def build_snapshot(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    snapshot_date: date,
    orders: str | Path | pl.DataFrame,
    models: dict[str, SqlModel] | None = None,
    python_models: dict[str, PythonModel] | None = None,
) -> dict[str, float]:
    """Register the staged orders (a Parquet path or a frame) and the config tables, build all.

    Without `python_models`, the predictive models of `pipelines/predictive/predictive.py` are
    used. Returns the seconds each model took. (The segment history of the lookback days is
    a model like the others, `int_customer_lookback_states`: one pass over the orders.)
    """
    if python_models is None:
        from pipelines.predictive.predictive import Predictive

        python_models = Predictive(config).python_models()
    models = models if models is not None else load_models()
    register_sources(con, config, orders)
    return build_models(con, model_params(config, snapshot_date), models, python_models)


def _predictive(ctx: RunContext) -> Predictive:
    from pipelines.predictive.carry_forward import last_good_fit
    from pipelines.predictive.predictive import Predictive

    return Predictive(
        ctx.config,
        ctx.snapshot_date.isoformat(),
        previous_fit=lambda models: last_good_fit(ctx.warehouse, ctx.snapshot_date, models),
    )


PREDICTIVE_STATE = "predictive.json"  # a sharded build's fits' warnings, for the last task


def run_sharded_part(ctx: RunContext, index: int, shard: int | None) -> dict[str, Any]:
    """One part of a sharded build -- shard `shard` of phase `index`, or the global phase
    `index` (shard None) -- for the DAG's tasks; the marts stage then finds it done.

    The staged orders are split by the first call (`shard` None, index -1: the DAG's plan task).
    """
    from pipelines.transform import sharded

    config = ctx.config
    shards = config.sources.shards
    if shards == 1:
        return {"phase": index, "shard": shard, "sharded": False}
    work = ctx.work_dir / "shards"
    staged_path = ctx.load_result("stage")["staged_path"]
    phases = sharded.prepare(work, config, staged_path, shards)
    if index < 0:
        return {
            "phases": [p.kind for p in phases],
            "shards": list(range(shards)),
            "path": str(sharded.split_dir(work)),
        }
    if shard is not None:
        task = sharded.shard_task(
            work, config, ctx.snapshot_date, staged_path, phases, index, shard, shards, None
        )
        seconds = sharded.run_shard_part(task, index)
    else:
        predictive = _predictive(ctx)
        python_models = predictive.python_models()
        seconds = (
            sharded.run_global_part(
                work, config, ctx.snapshot_date, shards, phases, index, python_models
            )
            or {}
        )
        if python_models.keys() & set(seconds):
            write_json(
                sharded.part_dir(work, None) / PREDICTIVE_STATE,
                {"warnings": predictive.warnings, "failures": predictive.failures},
            )
    # the part's own directory: all it wrote, and all an object-store run copies up after it
    return {
        "phase": index,
        "shard": shard,
        "models": len(seconds),
        "path": str(sharded.part_dir(work, shard)),
    }


def run(ctx: RunContext, python_models: dict[str, PythonModel] | None = None) -> dict[str, Any]:
    from pipelines.predictive.drift import backtest_drift_warning

    config = ctx.config
    check_contract_horizons(config)
    staged = ctx.load_result("stage")
    models = load_models()
    predictive = _predictive(ctx)
    spill = ctx.work_dir / "spill"
    shards = config.sources.shards
    sharded_build = None
    model_seconds: dict[str, float] = {}
    if shards > 1:
        from pipelines.transform import sharded

        sharded_build = sharded.build(
            ctx.work_dir / "shards",
            config,
            ctx.snapshot_date,
            staged["staged_path"],
            python_models if python_models is not None else predictive.python_models(),
            shards,
            config.sources.shard_workers,
        )
        model_seconds = sharded_build.model_seconds
        state = sharded.part_dir(ctx.work_dir / "shards", None) / PREDICTIVE_STATE
        if "int_model_fits" not in model_seconds and state.exists():  # fitted by the DAG's task
            fitted: dict[str, list[str]] = read_json(state) or {}
            predictive.warnings[:] = fitted["warnings"]
            predictive.failures[:] = fitted["failures"]
        build = BuildConnection.fixed(sharded_build.connect(config))
    else:  # the built tables live in a file on the work disk, not in the memory budget

        def open_build() -> duckdb.DuckDBPyConnection:
            con = connect(config.resources, spill, database=spill / BUILD_DATABASE)
            register_sources(con, config, staged["staged_path"])
            return con

        # reopened when the process holds more than the budget leaves outside DuckDB
        resources = config.resources
        build = BuildConnection(
            open_build, held_at_most=resources.budget_bytes() * (1 - resources.duckdb_share)
        )
    sharding: dict[str, Any] | None = None
    try:
        if sharded_build is None:
            python_models = (
                python_models if python_models is not None else predictive.python_models()
            )
            params = model_params(config, ctx.snapshot_date)
            model_seconds = build_models(build, params, models, python_models)
        else:
            sharding = sharded_build.reconcile(build.con, staged["rows_in_snapshot"])
        con = build.con
        warnings = list(predictive.warnings)
        overall = con.sql(
            "select mae from mart_model_backtest where scope = 'overall' and selected"
        ).fetchall()
        drift = backtest_drift_warning(
            ctx.warehouse,
            ctx.snapshot_date.isoformat(),
            overall[0][0] if overall else None,
            config.predictive.backtest_drift_ratio,
        )
        warnings += [drift] if drift else []
        out = ctx.work_dir / "publish"
        tables: dict[str, dict[str, Any]] = {}
        for model in models.values():
            if model.published_name is None:
                continue
            name = model.published_name
            contract = load_contract(name)
            batches = sharded_build.batches(con, model.name) if sharded_build else None
            rows = write_table(con, model.name, contract, out / name, ctx.snapshot_date, batches)
            tables[name] = {"rows": rows, "columns": len(contract.column_names)}
    finally:
        build.close()
        for leftover in (BUILD_DATABASE, f"{BUILD_DATABASE}.wal"):
            (spill / leftover).unlink(missing_ok=True)
    # Before anything is published: each written file against its contract's suite.
    checked = check_marts(config, out, list(tables), spill)
    warnings += checked.pop("warnings")
    return ctx.save_result(
        "marts",
        {
            "publish_dir": str(out),
            "tables": tables,
            "warnings": warnings,
            "model_seconds": model_seconds,
            **({"model_peak_rss_mb": build.peak_rss_mb} if sharded_build is None else {}),
            "model_failures": list(predictive.failures),
            "validation": checked,
            **({"sharding": sharding} if sharding is not None else {}),
        },
    )


BATCH_ROWS = 1_000_000  # rows of a built table converted and written at a time
# The unsharded build's DuckDB file: at 10M orders the intermediate tables (the lookback days'
# chain alone is customers x days rows) outgrow a 4 GB budget held in memory; in a file DuckDB
# keeps only the working set in its buffer pool. Deleted when the stage ends.
BUILD_DATABASE = "marts.duckdb"


def write_table(
    con: duckdb.DuckDBPyConnection,
    model: str,
    contract: Contract,
    directory: Path,
    snapshot: date,
    batches: Iterable[pa.RecordBatch] | None = None,
) -> int:
    """Write a built table conformed to its contract, streamed out of DuckDB in batches.

    `batches` (default: the table's, in DuckDB's order) lets a sharded build stream its shards
    one after another. The grain (one row per primary key) is then checked over the whole
    table, in DuckDB.
    """
    if batches is None:
        batches = con.sql(f"select * from {model}").fetch_record_batch(BATCH_ROWS)
    rows = write_conformed_batches(
        batches, contract, directory, {"snapshot_date": snapshot.isoformat()}
    )
    key = contract.primary_key
    if key:
        columns = ", ".join(f'"{k}"' for k in key)
        distinct = con.sql(f"select count(*) from (select distinct {columns} from {model})")
        duplicates = rows - int(distinct.fetchall()[0][0])
        if duplicates:
            raise grain_error(contract, duplicates)
    return rows


def check_contract_horizons(config: Config) -> None:
    """Each configured prediction horizon must have its columns in the customer_clv contract."""
    names = set(load_contract("customer_clv").column_names)
    missing = [
        col
        for h in config.predictive.horizons_days
        for col in (f"expected_purchases_{h}", f"predicted_clv_{h}")
        if col not in names
    ]
    if missing:
        raise ModelError(
            f"predictive.horizons_days needs column(s) {', '.join(missing)} in "
            "data_contracts/customer_clv.yaml (the published schema); add them there first"
        )
