"""The `custval` Typer app: options shared by the commands, and one line for every failure.

Errors a user can act on print as one line (`error: ...`) with a non-zero exit code; a full
traceback only appears with `--debug`. The pipeline's warnings print as `warning:` lines.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.cli import logs
from pipelines.cli.failures import custval_error_line, failure_line
from pipelines.errors import CustvalError
from pipelines.settings import Settings, SettingsError, required, resolve

app = typer.Typer(
    name="custval",
    help="Raw orders in, customer-value tables out (RFM, ABC, lifecycle, cohorts, CLV) as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


console = Console(highlight=False)


err_console = Console(stderr=True, highlight=False)


_DEBUG = {"on": False}


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from pipelines import __version__

        try:
            installed = version("custval")
        except PackageNotFoundError:  # run from a source tree that is not installed
            installed = __version__
        console.print(f"custval {installed}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="text: warnings as `warning:` lines (default); json: every log record from "
            "INFO up as one JSON object a line on stderr, for log shippers.",
        ),
    ] = "text",
) -> None:
    _DEBUG["on"] = debug
    if log_format not in ("text", "json"):
        fail(f"unknown --log-format {log_format!r}: use text or json", 2)
    logs.install("json" if log_format == "json" else "text", err_console)


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


# Options every command that takes them reads the same way: given, else $CUSTVAL_<NAME>
# (pipelines/settings.py), else an error naming both.
SourceOption = Annotated[
    str | None,
    typer.Option(
        help="Files (a file, directory or glob of CSV/Parquet/JSON Lines), a landing directory of "
        "date=YYYY-MM-DD folders, or postgresql://user@host:port/db (default: $CUSTVAL_SOURCE)."
    ),
]
WarehouseOption = Annotated[
    Path | None,
    typer.Option(help="Warehouse directory (default: $CUSTVAL_WAREHOUSE)."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="YAML file overriding the default configuration (default: $CUSTVAL_CONFIG)."),
]


def settings(*needed: str, **given: object) -> Settings:
    """The command's options over the environment; `needed` ones must end up set."""
    try:
        merged = resolve(**given)
        for name in needed:
            required(merged, name)
    except SettingsError as exc:
        fail(str(exc), 2)
        raise  # unreachable: fail() exits
    if merged.config is not None and not merged.config.is_file():
        fail(f"config file not found: {merged.config}", 2)
    return merged


def parse_date_option(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"invalid {what} {value!r}: expected YYYY-MM-DD", 2)
    return None


def seconds_option(value: float, what: str) -> float:
    if value != value or value < 0 or value == float("inf"):
        fail(f"invalid {what} {value}: give a number of seconds >= 0", 2)
    return value


def main() -> None:
    try:
        app()
    except CustvalError as exc:
        if _DEBUG["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {custval_error_line(exc)}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _DEBUG["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {failure_line(exc)}", soft_wrap=True)
        sys.exit(1)
