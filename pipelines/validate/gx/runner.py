"""Run a generated expectation suite with Great Expectations 1.x and report per contract rule.

GX runs for real: an ephemeral context, a pandas data source over the typed batch (GX has
no Polars engine, and its SQL path does not support DuckDB), a checkpoint with
`result_format=COMPLETE` keyed by the batch row number so row-level failures come back as
row keys, and a Data Docs site written under the warehouse for people to read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

ROW_KEY = "_row"


@dataclass
class RuleOutcome:
    rule: str
    expectation: str
    severity: str
    reason_code: str
    success: bool
    column: str | None = None
    unexpected_count: int = 0
    element_count: int = 0
    unexpected_rows: list[int] = field(default_factory=list)
    sample: list[Any] = field(default_factory=list)
    observed: Any = None

    def describe(self) -> str:
        if self.column is None:
            return f"rule {self.rule} ({self.expectation}) failed: observed {self.observed}"
        sample = ", ".join(repr(v) for v in self.sample[:3])
        return (
            f"rule {self.rule} ({self.expectation} on {self.column}) failed for "
            f"{self.unexpected_count:,} of {self.element_count:,} rows (e.g. {sample})"
        )


@dataclass
class GxReport:
    success: bool
    outcomes: list[RuleOutcome]
    docs_index: str | None
    docs_page: str | None


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in ("great_expectations", "great_expectations.core", "posthog"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            "custval": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def run_suite(
    frame: pl.DataFrame, make_suite: Callable[[], Any], docs_dir: Path, run_name: str
) -> GxReport:
    """Validate `frame` (must hold ROW_KEY) against the suite `make_suite()` builds.

    The suite is built after the context exists (GX 1.x binds suites to the active context).
    Data Docs go to `docs_dir`.
    """
    _quiet_gx()
    import great_expectations as gx

    docs_dir.mkdir(parents=True, exist_ok=True)
    context = _context(docs_dir)
    suite = context.suites.add(make_suite())
    source = context.data_sources.add_pandas("custval")
    batch = source.add_dataframe_asset(name=suite.name).add_batch_definition_whole_dataframe(
        "batch"
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=run_name, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite.name}_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["custval"])],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
        )
    )
    pdf = frame.to_pandas()
    result = checkpoint.run(
        batch_parameters={"dataframe": pdf}, run_id=gx.RunIdentifier(run_name=run_name)
    )

    outcomes: list[RuleOutcome] = []
    page = None
    for identifier, validation in result.run_results.items():
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name="custval")
        page = urls[0]["site_url"] if urls else None
        for r in validation.results:
            cfg = r.expectation_config
            meta = cfg.meta or {}
            res = r.result or {}
            rows = [int(item[ROW_KEY]) for item in res.get("unexpected_index_list") or []]
            outcomes.append(
                RuleOutcome(
                    rule=meta.get("rule", cfg.type),
                    expectation=cfg.type,
                    severity=meta.get("severity", "reject"),
                    reason_code=meta.get("reason_code", ""),
                    success=bool(r.success),
                    column=cfg.kwargs.get("column"),
                    unexpected_count=int(res.get("unexpected_count") or 0),
                    element_count=int(res.get("element_count") or len(pdf)),
                    unexpected_rows=rows,
                    sample=list(res.get("partial_unexpected_list") or [])[:5],
                    observed=res.get("observed_value"),
                )
            )
    index = context.get_docs_sites_urls(site_name="custval")
    return GxReport(
        success=bool(result.success),
        outcomes=outcomes,
        docs_index=_path(index[0]["site_url"]) if index else None,
        docs_page=_path(page),
    )


def _path(url: str | None) -> str | None:
    return url.removeprefix("file://") if url else None
