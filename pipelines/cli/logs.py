"""Where the pipeline's log records go on the command line: people's lines, or JSON for shippers.

The pipeline logs with the standard `logging` module, one logger per module named after it
(`pipelines.run.pipeline`, `pipelines.storage.locking`, ...), so Airflow captures the records into
its task logs and a deployment tunes one module with the usual logging config. On the command
line one handler on the package's logger, `pipelines`, writes them to stderr: `--log-format text`
(the default) prints warnings and errors as `warning: ...` lines through the rich console, so they
interleave cleanly with its progress line; `--log-format json` prints every record from INFO up as one JSON
object a line (time, level, logger, message, and the run's snapshot_date / run_id / stage when
the record carries them), for Fluent Bit, Vector or a log index.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

from rich.console import Console

LogFormat = Literal["text", "json"]
FIELDS = ("snapshot_date", "run_id", "stage", "seconds")  # extras the pipeline attaches
PACKAGE_LOGGER = "pipelines"  # every module's logger is a child: logging.getLogger(__name__)


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


class ConsoleHandler(logging.Handler):
    """People's handler: each record one plain line on the rich console (stderr)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise into the pipeline
            self.handleError(record)


def install(fmt: LogFormat = "text", console: Console | None = None) -> None:
    """One stderr handler on the package's logger (replacing an earlier one of ours)."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for old in [h for h in logger.handlers if getattr(h, "_custval_cli", False)]:
        logger.removeHandler(old)
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.setLevel(logging.INFO)
        logger.setLevel(logging.INFO)
    else:
        handler = ConsoleHandler(console or Console(stderr=True, highlight=False))
        handler.setFormatter(TextFormatter())
        handler.setLevel(logging.WARNING)
    setattr(handler, "_custval_cli", True)  # noqa: B010 - marks our handler for a later install
    logger.addHandler(handler)
    logger.propagate = False


class _Progress(logging.Handler):
    """Hands the `progress` of INFO records (a model built, 12/46) to the live line."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if progress:
            try:
                self.show(str(progress))
            except Exception:  # noqa: BLE001 - logging must never raise into the pipeline
                self.handleError(record)


@contextmanager
def progress_to(show: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, records carrying `progress` reach `show` (the run's live line).

    The package's logger is opened to INFO for it; the console handler still prints only
    warnings and errors.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = _Progress(show)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
