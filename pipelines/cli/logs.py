"""Where the pipeline's log records go on the command line: people's lines, or JSON for shippers.

The pipeline logs with the standard `logging` module under the `custval` logger (Airflow
captures the same records into its task logs). On the command line one handler writes them to
stderr: `--log-format text` (the default) prints warnings and errors as `warning: ...` lines
beside the console's progress; `--log-format json` prints every record from INFO up as one JSON
object a line (time, level, logger, message, and the run's snapshot_date / run_id / stage when
the record carries them), for Fluent Bit, Vector or a log index.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
FIELDS = ("snapshot_date", "run_id", "stage", "seconds")  # extras the pipeline attaches


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def install(fmt: LogFormat = "text") -> None:
    """One stderr handler on the `custval` logger (replacing an earlier one of ours)."""
    logger = logging.getLogger("custval")
    for handler in [h for h in logger.handlers if getattr(h, "_custval_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        handler.setLevel(logging.INFO)
        logger.setLevel(logging.INFO)
    else:
        handler.setFormatter(TextFormatter())
        handler.setLevel(logging.WARNING)
    handler._custval_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
