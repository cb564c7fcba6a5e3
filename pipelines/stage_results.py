"""What each stage hands the next: one typed record per stage, saved in the run's work dir.

Stages exchange paths and counts, never data (an Airflow task passes them through XCom). The
records are plain JSON; these TypedDicts say what each holds, so a stage reading another's
result is checked by the type checker, and `RunContext.load_result` returns the right one.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

StageName = Literal["extract", "validate", "stage", "marts", "publish", "manifest"]


class Counts(TypedDict):
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_duplicate: int


class Lines(TypedDict):
    lines_in: int
    lines_quarantined: int


class ExtractResult(TypedDict):
    raw_dir: str | None
    source: str
    source_kind: str
    arrived: bool
    files: list[dict[str, Any]]  # per landed file: path, format, rows, lines, columns, sha256, ...
    refused_files: list[dict[str, Any]]
    rows_in: int
    input_fingerprint: str | None
    reused: bool
    watermark: NotRequired[dict[str, Any]]


class ValidateResult(TypedDict):
    counts: Counts
    lines: Lines
    per_file: list[dict[str, Any]]
    quarantine_reasons: dict[str, int]
    warnings: list[str]
    quiet_day: bool
    gx: dict[str, Any] | None
    quarantine_path: str | None
    accepted_path: NotRequired[str]
    arrived: NotRequired[bool]


class SnapshotOrdersResult(TypedDict):
    staged_path: str
    rows_in_snapshot: int
    rows_after_snapshot: int
    history_until: str | None
    history_batches: dict[str, str] | None
    snapshot_end_exclusive: str
    hashed_columns: list[str]


class TableFacts(TypedDict):
    rows: int
    columns: int


class MartsResult(TypedDict):
    publish_dir: str
    tables: dict[str, TableFacts]
    warnings: list[str]
    model_seconds: dict[str, float]
    # the process's peak RSS while each model was built (an unsharded build; a sharded one
    # measures its parts: `sharding`)
    model_peak_rss_mb: NotRequired[dict[str, float]]
    model_failures: NotRequired[list[str]]  # a model could not be fitted: the run is degraded
    # the built tables checked against their contracts' suites (validate/mart_checks.py)
    validation: NotRequired[dict[str, Any]]
    # a sharded build (sources.shards > 1): shards, phases, orders and customers per shard
    sharding: NotRequired[dict[str, Any]]


class PublishResult(TypedDict):
    version: str
    tables: dict[str, str]  # table -> the partition readers use
    quarantine: str | None
