"""The phases of a sharded build: every model once, after its inputs, per shard or global."""

from __future__ import annotations

from pipelines.config import ResourcesConfig, load_config
from pipelines.engines import connect
from pipelines.predictive.predictive import Predictive
from pipelines.transform import marts
from pipelines.transform.sharded import SHARD_LOCAL, SUMMED, plan


def _plan() -> tuple[list, dict, dict]:
    models = marts.load_models()
    python_models = Predictive(load_config()).python_models()
    return plan(models, python_models), models, python_models


def test_every_listed_per_shard_model_exists() -> None:
    _, models, _ = _plan()
    assert models.keys() >= SHARD_LOCAL | SUMMED.keys()


def test_no_global_phase_reads_the_orders() -> None:
    """The global phases read customer-level tables and summed cells, never the orders (but
    for the journey's high-value bar, which reads the order sequence: see sql/README.md)."""
    phases, _, _ = _plan()
    order_grain = {"stg_orders", "int_orders", "int_purchase_days"}
    for phase in phases:
        if phase.kind == "global":
            assert not order_grain & set(phase.inputs), phase


def test_every_model_runs_once_after_its_inputs_in_alternating_phases() -> None:
    phases, models, python_models = _plan()
    built = [name for phase in phases for name in phase.models]
    assert sorted(built) == sorted(models.keys() | python_models.keys())
    kinds = [phase.kind for phase in phases]
    assert kinds[0] == "shard" and all(a != b for a, b in zip(kinds, kinds[1:], strict=False))
    deps = marts.dependencies(models, python_models)
    done: set[str] = set()
    for phase in phases:
        read = {d for name in phase.models for d in deps[name]} - set(phase.models)
        assert set(phase.inputs) == read  # what the phase registers from earlier phases
        for name in phase.models:
            assert deps[name] <= done, (name, deps[name] - done)
            done.add(name)
            local = name in SHARD_LOCAL or name in SUMMED
            assert (phase.kind == "shard") == (local and name not in python_models)


def test_a_per_shard_model_reading_a_global_one_waits_for_its_phase() -> None:
    phases, _, _ = _plan()
    index = {name: i for i, phase in enumerate(phases) for name in phase.models}
    # the RFM segment of a customer needs the global score cut: the next shard phase
    assert index["int_customer_rfm_segment_daily"] == index["int_customer_rfm_scores_daily"] + 1
    # the fits are global and run in the first global phase, on the first shard phase's inputs
    assert index["int_model_fits"] == index["int_model_inputs"] + 1


def _limit_bytes(resources: ResourcesConfig) -> float:
    """The memory limit a DuckDB connection of the run's engines reports, in bytes."""
    con = connect(resources)
    try:
        number, unit = con.sql("select current_setting('memory_limit')").fetchall()[0][0].split()
    finally:
        con.close()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def test_workers_share_the_memory_budget() -> None:
    """N shard workers at once: each DuckDB gets 1/N of resources.memory_limit."""
    budget = load_config().resources.model_copy(update={"memory_limit": "2GB"})
    whole, quarter = _limit_bytes(budget), _limit_bytes(budget.shared(4))
    assert abs(quarter - whole / 4) <= whole * 0.01
    assert budget.shared(1) == budget
