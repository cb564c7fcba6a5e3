"""The run context: which snapshot, from which source, into which warehouse.

It is small and JSON-serialisable so Airflow tasks can pass it through XCom; everything a
stage produces goes to files under the run's work directory, and each stage's result (paths
and counts) is saved there too, so any later stage -- in the same process or another task --
can read what came before.

Everything a user can get wrong about a run (a date outside the supported range or of a day
that has not ended, a warehouse URL we cannot write, a warehouse path that is a file) is
checked here, before any work starts, and reported in one line.

A warehouse is a local directory or `s3://bucket/prefix` (S3 or an S3-compatible store). For
the latter, `warehouse` is the run's local view of it on the scratch disk
(`pipelines/storage/local_view.py`) and `remote` its URL: the stages read and write local
paths either way.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, overload

from pipelines.config import Config, load_config
from pipelines.errors import CustvalError
from pipelines.sources import Source, resolve
from pipelines.stage_results import (
    ExtractResult,
    MartsResult,
    PublishResult,
    SnapshotOrdersResult,
    StageName,
    ValidateResult,
)
from pipelines.storage import files, layout, local_view
from pipelines.storage.jsonfile import write_json
from pipelines.storage.object_store import SCHEME, is_object_url, normalise_url, parse_url

_URL = re.compile(
    r"^([A-Za-z][A-Za-z0-9+.-]+):/"
)  # also s3:/x, which is what Path("s3://x") becomes


def with_sharding(config: Config, shards: int | None, workers: int | None) -> Config:
    """The config with a run's --shards / --workers over sources.shards / shard_workers."""
    update: dict[str, int] = {}
    if shards is not None:
        update["shards"] = shards
    if workers is not None:
        update["shard_workers"] = workers
    sources = type(config.sources).model_validate({**config.sources.model_dump(), **update})
    return config.model_copy(update={"sources": sources})


def parse_date(value: str | date, what: str = "date") -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CustvalError(f"invalid {what} {value!r}: expected YYYY-MM-DD") from None


def check_warehouse(warehouse: str | Path, view: str | None = None) -> Path:
    """The warehouse as an absolute local directory path, or a one-line error.

    An `s3://bucket/prefix` warehouse gives a local view of it named `view` (by default a
    command's own, `local_view.command_name()`), which the caller closes when done.
    """
    text = str(warehouse)
    if is_object_url(text):
        url = object_warehouse(text)
        return local_view.open_view(url, view or local_view.command_name())
    scheme = _URL.match(text)
    if scheme:
        raise CustvalError(
            f"warehouse {text}: {scheme.group(1)}:// warehouses are not supported; use a local "
            f"directory or {SCHEME}://bucket/prefix (S3, MinIO or another S3-compatible store)"
        )
    path = Path(text).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise CustvalError(
                    f"warehouse {path}: {parent} is a file, not a directory; choose another --warehouse"
                )
            break
    return path


def object_warehouse(text: str) -> str:
    """An `s3://bucket/prefix` warehouse URL, checked and normalised (one-line error if bad)."""
    url = normalise_url(text)
    parse_url(url)
    return url


def snapshot_end(snapshot: date) -> datetime:
    """Exclusive upper bound of a snapshot: the start of the next day, UTC."""
    return datetime.combine(snapshot + timedelta(days=1), time(0), tzinfo=UTC)


def check_snapshot_date(
    snapshot: date, now: datetime, earliest: date, allow_partial_day: bool
) -> None:
    """Only days that have ended (unless asked for), and none before the earliest order date."""
    if snapshot < earliest:
        raise CustvalError(
            f"snapshot date {snapshot} is before validation.earliest_order_date ({earliest}): no order can "
            "be that old; set that option in the config if your history really starts earlier"
        )
    today = now.astimezone(UTC).date()
    if snapshot > today:
        raise CustvalError(f"snapshot date {snapshot} is in the future (today is {today} UTC)")
    if snapshot_end(snapshot) > now and not allow_partial_day:
        left = snapshot_end(snapshot) - now
        hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
        raise CustvalError(
            f"snapshot {snapshot} is a day that has not ended (it ends at {snapshot + timedelta(days=1)} "
            f"00:00 UTC, in {hours} h {minutes:02d} min); build {snapshot - timedelta(days=1)}, "
            "or pass --allow-partial-day to build it anyway"
        )


@dataclass(frozen=True)
class RunContext:
    run_id: str
    snapshot_date: date
    warehouse: Path
    source: str
    config_path: str | None
    started_at: datetime
    source_kind: str = "auto"
    table: str | None = None
    reingest: bool = False
    parent_run_id: str | None = None  # set when this context rebuilds a past snapshot for a run
    allow_partial_day: bool = False
    remote: str | None = None  # the s3:// warehouse `warehouse` is a local view of
    shards: int | None = None  # --shards / the DAG's param, over the config's sources.shards
    shard_workers: int | None = None  # --workers, over sources.shard_workers
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        *,
        source: str,
        snapshot_date: str | date,
        warehouse: str | Path,
        config_path: str | None = None,
        run_id: str | None = None,
        now: datetime | None = None,
        source_kind: str = "auto",
        table: str | None = None,
        reingest: bool = False,
        allow_partial_day: bool = False,
        parent_run_id: str | None = None,
        shards: int | None = None,
        shard_workers: int | None = None,
    ) -> RunContext:
        snap = parse_date(snapshot_date, "snapshot date (--as-of)")
        started = now or datetime.now(UTC)
        if run_id is None:
            run_id = f"{snap.isoformat()}_{started:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"
        run_id = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)
        remote = object_warehouse(str(warehouse)) if is_object_url(str(warehouse)) else None
        ctx = cls(
            run_id,
            snap,
            check_warehouse(warehouse, view=parent_run_id or run_id),
            str(source),
            config_path,
            started,
            source_kind,
            table,
            reingest,
            parent_run_id,
            allow_partial_day,
            remote,
            shards,
            shard_workers,
        )
        try:
            config = ctx.config  # a bad config file fails before anything else
            check_snapshot_date(
                snap, started, config.validation.earliest_order_date, allow_partial_day
            )
            _ = ctx.source_spec  # fail early on a source that cannot be read as the kind it claims
        except BaseException:
            ctx.close_view()  # an s3:// warehouse: the view made for this run goes too
            raise
        return ctx

    @property
    def config(self) -> Config:
        """The run's configuration, read once."""
        if "config" not in self._cache:
            config = load_config(self.config_path)
            if self.shards is not None or self.shard_workers is not None:
                config = with_sharding(config, self.shards, self.shard_workers)
            self._cache["config"] = config
        return self._cache["config"]

    @property
    def source_spec(self) -> Source:
        """The resolved source, looked up once (a landing directory is listed to tell its kind)."""
        if "source" not in self._cache:
            self._cache["source"] = resolve(self.source, self.source_kind, self.table)
        return self._cache["source"]

    @property
    def owner_run_id(self) -> str:
        """The run holding the leases (a rebuild works for the run that started it)."""
        return self.parent_run_id or self.run_id

    def for_snapshot(self, snapshot: date, purpose: str = "rebuild") -> RunContext:
        """A context rebuilding another snapshot (or ingesting another day's batch) for this run."""
        sub = RunContext(
            run_id=f"{snapshot.isoformat()}_{purpose}_{self.owner_run_id}",
            snapshot_date=snapshot,
            warehouse=self.warehouse,
            source=self.source,
            config_path=self.config_path,
            started_at=self.started_at,
            source_kind=self.source_kind,
            table=self.table,
            parent_run_id=self.owner_run_id,
            allow_partial_day=self.allow_partial_day,
            remote=self.remote,
            shards=self.shards,
            shard_workers=self.shard_workers,
        )
        sub._cache.update(self._cache)
        return sub

    def for_batch(self, ingest_date: date) -> RunContext:
        """A context ingesting the batch of another day (one that arrived late) for this run."""
        return self.for_snapshot(ingest_date, purpose="ingest")

    @property
    def location(self) -> str:
        """The warehouse as users name it: its directory, or its s3:// URL."""
        return self.remote or str(self.warehouse)

    @property
    def work_dir(self) -> Path:
        root = self.warehouse / layout.WORK / self.owner_run_id
        return (
            root
            if self.parent_run_id is None
            else root / self.run_id.removesuffix(f"_{self.owner_run_id}")
        )

    @property
    def partition(self) -> str:
        return f"snapshot_date={self.snapshot_date.isoformat()}"

    @property
    def snapshot_end(self) -> datetime:
        return snapshot_end(self.snapshot_date)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_cache")
        d["source"] = self.source  # a postgres URL here comes from a connection at run time
        d["snapshot_date"] = self.snapshot_date.isoformat()
        d["warehouse"] = str(self.warehouse)
        d["started_at"] = self.started_at.isoformat()
        for key in ("remote", "shards", "shard_workers"):
            if d[key] is None:
                d.pop(key)  # a local, unsharded run's context reads as it always has
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        remote = d.get("remote")
        warehouse = Path(d["warehouse"])
        if remote:  # the same view path on whichever worker runs this task
            local_view.attach(warehouse, remote)
        return cls(
            run_id=d["run_id"],
            snapshot_date=date.fromisoformat(d["snapshot_date"]),
            warehouse=warehouse,
            source=d["source"],
            config_path=d.get("config_path"),
            started_at=datetime.fromisoformat(d["started_at"]),
            source_kind=d.get("source_kind", "auto"),
            table=d.get("table"),
            reingest=bool(d.get("reingest", False)),
            parent_run_id=d.get("parent_run_id"),
            allow_partial_day=bool(d.get("allow_partial_day", False)),
            remote=remote or None,
            shards=d.get("shards"),
            shard_workers=d.get("shard_workers"),
        )

    # Stage results -------------------------------------------------------------------------

    def save_result(self, stage: StageName, result: Any) -> Any:
        write_json(self.work_dir / f"{stage}.json", result)
        return result

    @overload
    def load_result(self, stage: Literal["extract"]) -> ExtractResult: ...
    @overload
    def load_result(self, stage: Literal["validate"]) -> ValidateResult: ...
    @overload
    def load_result(self, stage: Literal["stage"]) -> SnapshotOrdersResult: ...
    @overload
    def load_result(self, stage: Literal["marts"]) -> MartsResult: ...
    @overload
    def load_result(self, stage: Literal["publish"]) -> PublishResult: ...
    def load_result(self, stage: StageName) -> Any:
        """The record a completed stage saved (typed by stage: `pipelines/stage_results.py`)."""
        path = self.work_dir / f"{stage}.json"
        if not path.exists():
            raise CustvalError(f"run {self.run_id}: stage {stage!r} has not completed (no {path})")
        return json.loads(path.read_text())

    def has_result(self, stage: str) -> bool:
        return (self.work_dir / f"{stage}.json").exists()

    def cleanup(self) -> None:
        files.remove_tree(self.work_dir)
        self.close_view()

    def close_view(self) -> None:
        """An s3:// warehouse: delete the run's local view (a local warehouse: nothing)."""
        if self.remote is not None and self.parent_run_id is None:
            local_view.close(self.warehouse)
