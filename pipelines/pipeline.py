"""The pipeline: six stages, the same functions whether the CLI or the Airflow DAG calls them.

    extract -> validate -> stage -> marts -> publish -> manifest

Each stage reads what earlier stages left in the run's work dir and returns a small dict of
paths and counts (what Airflow passes through XCom). `run_stage` measures wall time and peak
memory around every stage for the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipelines import extract, manifest, marts, publish, stage, validate
from pipelines.context import RunContext
from pipelines.metrics import measure

STAGES: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "extract": extract.run,
    "validate": validate.run,
    "stage": stage.run,
    "marts": marts.run,
    "publish": publish.run,
    "manifest": manifest.run,
}


def run_stage(name: str, ctx: RunContext) -> dict[str, Any]:
    if name == "manifest":  # written last, recording the other stages' measurements
        return manifest.run(ctx)
    with measure() as m:
        result = STAGES[name](ctx)
    metrics_dir = ctx.work_dir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    (metrics_dir / f"{name}.json").write_text(json.dumps(m.as_dict()))
    return result


def run_all(
    ctx: RunContext,
    on_stage_start: Callable[[str], None] | None = None,
    on_stage_end: Callable[[str, dict[str, Any]], None] | None = None,
    keep_work_dir: bool = False,
) -> dict[str, Any]:
    """Run every stage for one snapshot; returns the manifest."""
    result: dict[str, Any] = {}
    for name in STAGES:
        if on_stage_start:
            on_stage_start(name)
        result = run_stage(name, ctx)
        if on_stage_end:
            on_stage_end(name, result)
    if not keep_work_dir:
        ctx.cleanup()
    return result
