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
dir, ready for the publish stage to swap into place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.config import Config, load_config
from pipelines.context import RunContext
from pipelines.contracts import load_contract
from pipelines.errors import CustvalError
from pipelines.publish import conform, write_partition_files
from pipelines.resources import sql_dir

LAYERS = ("stg", "int", "mart")
SOURCES = ("source_orders",)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")
_MATERIALIZED = re.compile(r"^--\s*Materialized:\s*(table|view)\b", re.MULTILINE | re.IGNORECASE)


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
# under its name like a SQL model. name -> (dependencies, function(con, params) -> Arrow table)
PythonModel = tuple[frozenset[str], Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pa.Table]]


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
            raise ModelError(f"{path}: DuckDB cannot parameterise a view; materialize it as a table")
        models[path.stem] = SqlModel(path.stem, path, text, frozenset(), params, materialized)
    for name, model in models.items():
        code = _COMMENT.sub("", model.sql)
        deps = {other for other in models if other != name and re.search(rf"\b{other}\b", code)}
        models[name] = replace(model, depends_on=frozenset(deps))
    return models


def build_order(models: dict[str, SqlModel], python_models: dict[str, PythonModel] | None = None) -> list[str]:
    graph: dict[str, set[str]] = {n: set(m.depends_on) for n, m in models.items()}
    for name, (deps, _) in (python_models or {}).items():
        graph[name] = set(deps)
    for name, model in models.items():  # SQL may read Python models' tables too
        graph[name] |= {p for p in (python_models or {}) if re.search(rf"\b{p}\b", _COMMENT.sub("", model.sql))}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ModelError(f"SQL models depend on each other in a cycle: {exc.args[1]}") from None


def model_params(config: Config, ctx: RunContext) -> dict[str, Any]:
    """Every value a model may reference as `$name`."""
    return {
        "snapshot_date": ctx.snapshot_date.isoformat(),
        "rfm_bins": config.rfm.bins,
    }


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")  # dates of timestamptz values are UTC dates
    con.execute("set preserve_insertion_order = false")
    return con


def build_models(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, Any],
    models: dict[str, SqlModel] | None = None,
    python_models: dict[str, PythonModel] | None = None,
) -> list[str]:
    """Materialise every model as a table; returns the build order."""
    models = models if models is not None else load_models()
    python_models = python_models or {}
    order = build_order(models, python_models)
    for name in order:
        if name in python_models:
            table = python_models[name][1](con, params)
            con.register(f"_{name}_arrow", table)
            con.execute(f"create or replace table {name} as select * from _{name}_arrow")
            con.unregister(f"_{name}_arrow")
            continue
        model = models[name]
        missing = sorted(model.params - params.keys())
        if missing:
            raise ModelError(f"{model.path}: unknown parameter(s) {', '.join('$' + m for m in missing)}")
        try:
            con.execute(
                f"create or replace {model.materialized} {name} as\n{model.sql}",
                {k: params[k] for k in model.params},
            )
        except duckdb.Error as exc:
            raise ModelError(f"{model.path}: {str(exc).splitlines()[0]}") from None
    return order


def run(ctx: RunContext, python_models: dict[str, PythonModel] | None = None) -> dict[str, Any]:
    config = load_config(ctx.config_path)
    staged = ctx.load_result("stage")
    models = load_models()
    con = connect()
    try:
        con.execute(f"create view source_orders as select * from read_parquet({_quote(staged['staged_path'])})")
        build_models(con, model_params(config, ctx), models, python_models)
        out = ctx.work_dir / "publish"
        tables: dict[str, dict[str, Any]] = {}
        for model in models.values():
            if model.published_name is None:
                continue
            name = model.published_name
            contract = load_contract(name)
            table = conform(con.sql(f"select * from {model.name}").to_arrow_table(), contract)
            write_partition_files(table, out / name, {"snapshot_date": ctx.snapshot_date.isoformat()})
            tables[name] = {"rows": table.num_rows, "columns": table.num_columns}
    finally:
        con.close()
    return ctx.save_result("marts", {"publish_dir": str(out), "tables": tables})


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
