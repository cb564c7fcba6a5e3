"""Run a generated expectation suite with Great Expectations 1.x and report per contract rule.

GX runs for real: an ephemeral context, a pandas data source over the typed batch (GX has
no Polars engine, and its SQL path does not support DuckDB), a checkpoint with
`result_format=COMPLETE` keyed by the batch row number so row-level failures come back as
row keys, and a Data Docs site written under the warehouse for people to read.

The Data Docs site keeps every run. Suites, data sources and checkpoints stay in memory (one
context per process, nothing shared), but validation results go to a filesystem store inside
the site (`_results/`, one JSON file per run, keyed by suite, run name, run time and batch):
GX renders a run's page and lists it in the index from that store, so earlier runs' results
must survive the process that made them. Building the site is done under an exclusive file
lock (`.build.lock`), so two runs validating at once in separate processes never interleave
their writes of `index.html`, and the index never drops another run's page: GX's index
builder normally deletes pages without a result in the store; ours keeps them (the store on
disk lists every run anyway). Files are written to a temporary name and renamed into place,
so a reader never sees half a page.

`SuiteSession` is the other way in: several batches, each against its own suite, in one
in-memory context that writes nothing (the published tables, checked before publish).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from pipelines.validate.gx.slices import WholeBatch

ROW_KEY = "_row"
SITE = "custval"
RESULTS_DIR = "_results"  # the validation results store, inside the Data Docs site
LOCK_FILE = ".build.lock"


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
    slices: int = 1


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in ("great_expectations", "great_expectations.core", "posthog"):
        logging.getLogger(name).setLevel(logging.WARNING)


@cache
def _gx_classes() -> dict[str, type]:
    """GX subclasses the site configuration names (built on first use: GX imports slowly)."""
    from great_expectations.data_context.store import TupleFilesystemStoreBackend
    from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder

    class AtomicFilesystemStoreBackend(TupleFilesystemStoreBackend):
        """Writes each file under a temporary name, then renames it into place."""

        def _set(self, key: Any, value: Any, **kwargs: Any) -> Any:  # the path, as GX returns
            if not isinstance(key, tuple):
                key = key.to_tuple()
            path = Path(self.full_base_directory) / self._convert_key_to_filepath(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            # No .json/.html suffix: GX's key listing ignores a temporary file.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(value.encode("utf-8") if isinstance(value, str) else value)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return str(path)

    class KeepingSiteIndexBuilder(DefaultSiteIndexBuilder):
        """Lists every page of the site and never deletes one.

        GX's default removes pages whose result is not in the current context's stores; with
        in-memory suites, or a page another process has just rendered, that loses pages.
        """

        def build(
            self, skip_and_clean_missing: bool = False, build_index: bool = True
        ) -> tuple[Any, Any]:
            return super().build(skip_and_clean_missing=False, build_index=build_index)

    return {
        "AtomicFilesystemStoreBackend": AtomicFilesystemStoreBackend,
        "KeepingSiteIndexBuilder": KeepingSiteIndexBuilder,
    }


def __getattr__(name: str) -> type:
    """GX loads configured classes by module and name; the classes are made on first use."""
    if name in ("AtomicFilesystemStoreBackend", "KeepingSiteIndexBuilder"):
        return _gx_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _backend(base_directory: Path) -> dict[str, Any]:
    return {
        "module_name": __name__,
        "class_name": "AtomicFilesystemStoreBackend",
        "base_directory": str(base_directory),
        # the id file would be written by every process that opens the store
        "suppress_store_backend_id": True,
    }


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": _backend(docs_dir / RESULTS_DIR),
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": _backend(docs_dir),
                "site_index_builder": {
                    "module_name": __name__,
                    "class_name": "KeepingSiteIndexBuilder",
                },
            }
        },
    )
    return gx.get_context(project_config=config, mode="ephemeral")


@contextmanager
def _site_lock(docs_dir: Path) -> Iterator[None]:
    """One site build at a time across processes (released by the OS if a process dies)."""
    with (docs_dir / LOCK_FILE).open("ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_suite(
    frame: pl.DataFrame,
    make_suite: Callable[[], Any],
    docs_dir: Path,
    run_name: str,
    slice_rows: int | None = None,
) -> GxReport:
    """Validate `frame` (must hold ROW_KEY) against the suite `make_suite()` builds.

    With `slice_rows`, GX sees at most that many rows at once (its pandas copy is bounded);
    see `run_suite_slices`.
    """
    from pipelines.validate.gx.slices import WholeBatch, row_slices

    return run_suite_slices(
        row_slices(frame, slice_rows or max(frame.height, 1)),
        make_suite,
        docs_dir,
        run_name,
        WholeBatch.of(frame, ROW_KEY),
    )


def run_suite_slices(
    slices: Iterable[pl.DataFrame],
    make_suite: Callable[[], Any],
    docs_dir: Path,
    run_name: str,
    whole: WholeBatch,
) -> GxReport:
    """Validate a batch given as row slices (each holding ROW_KEY; at least one, maybe empty).

    The suite is built after the context exists (GX 1.x binds suites to the active context).
    GX sees one slice at a time and the slices' results are merged into the whole batch's
    (`slices.merge`; rules over the whole batch come from `whole`): one result, one page.
    Data Docs go to `docs_dir`: this run's page is added, earlier runs' pages are kept.
    """
    from pipelines.validate.gx.slices import merge

    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

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
            actions=[],  # the site is built below, under the lock
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
        )
    )
    run_id = gx.RunIdentifier(run_name=run_name)  # one run time: every slice has the same key
    parts = [
        checkpoint.run(batch_parameters={"dataframe": part.to_pandas()}, run_id=run_id)
        for part in slices
    ]
    if not parts:
        raise ValueError("run_suite_slices needs at least one (possibly empty) slice")
    result = parts[-1]
    for identifier in result.run_results:
        result.run_results[identifier] = merge([p.run_results[identifier] for p in parts], whole)
    success = all(v.success for v in result.run_results.values())

    store = context.validation_results_store
    for identifier, validation in result.run_results.items():
        _name_the_asset(validation)
        store.set(identifier, validation)  # the same key (file) the checkpoints wrote
    with _site_lock(docs_dir):
        context.build_data_docs(
            site_names=[SITE],
            resource_identifiers=[
                *result.run_results,
                ExpectationSuiteIdentifier(name=suite.name),
            ],
        )

    outcomes: list[RuleOutcome] = []
    page = None
    for identifier, validation in result.run_results.items():
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=SITE)
        page = urls[0]["site_url"] if urls else None
        outcomes += [_outcome(r, whole.rows) for r in validation.results]
    index = context.get_docs_sites_urls(site_name=SITE)
    return GxReport(
        success=success,
        outcomes=outcomes,
        docs_index=_path(index[0]["site_url"]) if index else None,
        docs_page=_path(page),
        slices=len(parts),
    )


def _outcome(r: Any, rows: int) -> RuleOutcome:
    """One expectation's result as the contract rule it checks."""
    cfg = r.expectation_config
    meta = cfg.meta or {}
    res = r.result or {}
    keys = [int(item[ROW_KEY]) for item in res.get("unexpected_index_list") or []]
    return RuleOutcome(
        rule=meta.get("rule", cfg.type),
        expectation=cfg.type,
        severity=meta.get("severity", "reject"),
        reason_code=meta.get("reason_code", ""),
        success=bool(r.success),
        column=cfg.kwargs.get("column") or _columns(cfg.kwargs.get("column_list")),
        unexpected_count=int(res.get("unexpected_count") or 0),
        element_count=int(res.get("element_count") or rows),
        unexpected_rows=keys,
        sample=list(res.get("partial_unexpected_list") or [])[:5],
        observed=res.get("observed_value"),
    )


def _columns(column_list: list[str] | None) -> str | None:
    return "+".join(column_list) if column_list else None


@dataclass
class TableReport:
    """One batch of a session validated against its suite."""

    suite: str
    success: bool
    outcomes: list[RuleOutcome]


def _memory_context() -> Any:
    """An ephemeral context that keeps everything in memory and has no Data Docs site."""
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
        data_docs_sites={},
    )
    return gx.get_context(project_config=config, mode="ephemeral")


class SuiteSession:
    """One in-memory GX context for several batches, each with its own suite: a run's marts.

    `validate` runs one suite over one pandas frame. Nothing is written: the results are the
    caller's to report (the published tables' checks go to the manifest, not to Data Docs,
    whose index re-reads every stored result at each build).
    """

    def __init__(self) -> None:
        _quiet_gx()
        self.context = _memory_context()
        self._source = self.context.data_sources.add_pandas("custval")

    def validate(self, frame: Any, suite: Any, result_format: str = "BASIC") -> TableReport:
        """Validate `frame` against `suite` (an unsaved ExpectationSuite with a unique name).

        BOOLEAN_ONLY computes the least (success only); BASIC adds the unexpected counts and a
        sample of unexpected values (no row keys: a mart row is not a source line).
        """
        return self.validator(suite, result_format)(frame)

    def validator(self, suite: Any, result_format: str = "BASIC") -> Callable[[Any], TableReport]:
        """`validate` for many frames (the slices of one table) against one suite, set up once."""
        import great_expectations as gx

        context = self.context
        suite = context.suites.add(suite)
        batch = self._source.add_dataframe_asset(
            name=suite.name
        ).add_batch_definition_whole_dataframe("batch")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )

        def run(frame: Any) -> TableReport:
            validation = definition.run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": result_format},
            )
            return TableReport(
                suite.name,
                bool(validation.success),
                [_outcome(r, len(frame)) for r in validation.results],
            )

        return run


def _name_the_asset(validation: Any) -> None:
    """Put the batch's asset name where the validation page's header reads it.

    GX 1.x records the asset only in `meta["active_batch_definition"]`; the page renderer reads
    `data_asset_name` from `meta["batch_spec"]` (a dataframe batch's spec holds just a
    placeholder for the frame), hence "Data asset: None".
    """
    spec = validation.meta.get("batch_spec")
    spec = dict(spec) if isinstance(spec, dict) else {}
    if validation.asset_name and not spec.get("data_asset_name"):
        spec["data_asset_name"] = validation.asset_name
        validation.meta["batch_spec"] = spec


def _path(url: str | None) -> str | None:
    return url.removeprefix("file://") if url else None
