"""The `custval` command line: generate, run, backfill, unlock, report, demo, bench, docs.

`app.py` holds the Typer app and the one-line error handling; each command lives in the
module of its kind, which registers it on import.
"""

from pipelines.cli import report, runs, samples  # noqa: F401  (the commands register themselves)
from pipelines.cli.app import app, main

__all__ = ["app", "main"]
