"""Logging: one logger per module under `pipelines`, and the CLI's two handlers."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

import pipelines
from pipelines.cli import logs

PACKAGE = Path(pipelines.__file__).parent


def _logger_names(path: Path) -> list[str]:
    """The argument of every logging.getLogger(...) call at a module's top level."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
            and node.args
        ):
            names.append(ast.unparse(node.args[0]))
    return names


def test_every_module_that_logs_has_its_own_logger() -> None:
    named = {
        str(p.relative_to(PACKAGE)): _logger_names(p)
        for p in PACKAGE.rglob("*.py")
        if "getLogger" in p.read_text()
    }
    assert len(named) >= 8, named  # the stages, locking, publish, alerts ... log
    # the CLI installs its handler on the package's logger; GX's own loggers are quietened by name
    allowed = {"cli/logs.py": {"PACKAGE_LOGGER"}, "validate/gx/runner.py": {"name"}}
    wrong = {
        mod: names
        for mod, names in named.items()
        if set(names) - {"__name__"} - allowed.get(mod, set())
    }
    assert not wrong, f"modules naming a logger other than __name__: {wrong}"


@pytest.fixture
def restore_package_logger():
    logger = logging.getLogger(logs.PACKAGE_LOGGER)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_text_handler_prints_warning_lines_through_the_console(restore_package_logger) -> None:
    out = io.StringIO()
    logs.install("text", Console(file=out, width=40, highlight=False))
    logs.install("text", Console(file=out, width=40, highlight=False))  # replaces, never doubles
    module_log = logging.getLogger("pipelines.storage.locking")
    module_log.info("not shown: below warning")
    long = "a lease [bold]x[/] " + "y" * 80
    module_log.warning("%s", long)
    # one line, unwrapped and without rich markup interpreted
    assert out.getvalue() == f"warning: {long}\n"


def test_json_handler_writes_one_object_a_line(restore_package_logger, capsys) -> None:
    logs.install("json")
    logging.getLogger("pipelines.run.pipeline").info(
        "stage done", extra={"stage": "marts", "seconds": 1.5, "snapshot_date": "2025-01-02"}
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert record["logger"] == "pipelines.run.pipeline" and record["level"] == "INFO"
    assert (record["stage"], record["seconds"], record["snapshot_date"]) == (
        "marts",
        1.5,
        "2025-01-02",
    )


def test_progress_reaches_the_live_line_and_the_level_comes_back() -> None:
    logger = logging.getLogger("pipelines.transform.marts")
    package = logging.getLogger(logs.PACKAGE_LOGGER)
    before = package.level
    shown: list[str] = []
    with logs.progress_to(shown.append):
        logger.info("model a built", extra={"progress": "1/2 models, a built"})
        logger.info("no progress here")
        logger.debug("below INFO", extra={"progress": "never"})
    logger.info("after the block", extra={"progress": "not shown"})
    assert shown == ["1/2 models, a built"]
    assert package.level == before
