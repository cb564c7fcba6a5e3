"""Small JSON records (stage results, manifests, leases, `latest/`), written atomically.

A record is written to a temporary file in the same directory and renamed over the old one,
so a reader finds the previous version or the new one, never half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipelines.storage.faults import checkpoint


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    """Replace `path` with `data` as JSON; `durable` also flushes it to disk before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    checkpoint(f"write_json {path.name}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if durable:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The record at `path`, or None when it does not exist (or is unreadable)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
