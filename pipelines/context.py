"""The run context: which snapshot, from which source, into which warehouse.

It is small and JSON-serialisable so Airflow tasks can pass it through XCom; everything a
stage produces goes to files under the run's work directory, and each stage's result (paths
and counts) is saved there too, so any later stage -- in the same process or another task --
can read what came before.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipelines.errors import CustvalError
from pipelines.jsonfile import write_json
from pipelines.sources import Source, resolve

WORK = "_work"


def parse_date(value: str | date, what: str = "date") -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CustvalError(f"invalid {what} {value!r}: expected YYYY-MM-DD") from None


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
    ) -> RunContext:
        snap = parse_date(snapshot_date, "snapshot date (--as-of)")
        started = now or datetime.now(UTC)
        if run_id is None:
            run_id = f"{snap.isoformat()}_{started:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"
        run_id = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)
        ctx = cls(run_id, snap, Path(warehouse).resolve(), str(source), config_path, started, source_kind, table, reingest)
        ctx.source_spec  # fail early on a source that cannot be read as the kind it claims
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        return ctx

    @property
    def source_spec(self) -> Source:
        return resolve(self.source, self.source_kind, self.table)

    def for_snapshot(self, snapshot: date) -> RunContext:
        """A context rebuilding another snapshot from the same source and warehouse."""
        return RunContext.create(
            source=self.source,
            snapshot_date=snapshot,
            warehouse=self.warehouse,
            config_path=self.config_path,
            run_id=f"{snapshot.isoformat()}_rebuild_{self.run_id}",
            now=self.started_at,
            source_kind=self.source_kind,
            table=self.table,
        )

    @property
    def work_dir(self) -> Path:
        return self.warehouse / WORK / self.run_id

    @property
    def partition(self) -> str:
        return f"snapshot_date={self.snapshot_date.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = self.source  # a postgres URL here comes from a connection at run time
        d["snapshot_date"] = self.snapshot_date.isoformat()
        d["warehouse"] = str(self.warehouse)
        d["started_at"] = self.started_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        return cls(
            run_id=d["run_id"],
            snapshot_date=date.fromisoformat(d["snapshot_date"]),
            warehouse=Path(d["warehouse"]),
            source=d["source"],
            config_path=d.get("config_path"),
            started_at=datetime.fromisoformat(d["started_at"]),
            source_kind=d.get("source_kind", "auto"),
            table=d.get("table"),
            reingest=bool(d.get("reingest", False)),
        )

    # Stage results -------------------------------------------------------------------------

    def save_result(self, stage: str, result: dict[str, Any]) -> dict[str, Any]:
        write_json(self.work_dir / f"{stage}.json", result)
        return result

    def load_result(self, stage: str) -> dict[str, Any]:
        path = self.work_dir / f"{stage}.json"
        if not path.exists():
            raise CustvalError(f"run {self.run_id}: stage {stage!r} has not completed (no {path})")
        return json.loads(path.read_text())

    def has_result(self, stage: str) -> bool:
        return (self.work_dir / f"{stage}.json").exists()

    def cleanup(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
