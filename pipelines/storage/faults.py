"""Fault injection points for the crash tests: kill -9 at a named file operation.

Production code calls `checkpoint("publish.switch")` right before each file operation whose
interruption matters (the publish of a snapshot, the writes of the accepted zone). Without
the environment variables below it does nothing but count. The tests set:

- `CUSTVAL_FAULT_TRACE=<file>`: append the name of every checkpoint reached to the file (to
  enumerate the operations of a run);
- `CUSTVAL_KILL_AT=<n>`: SIGKILL this process at the n-th checkpoint (1-based), as a power
  cut or an OOM kill would, leaving every file as it is at that moment.
"""

from __future__ import annotations

import os
import signal

_reached = 0


def checkpoint(name: str) -> None:
    global _reached
    trace = os.environ.get("CUSTVAL_FAULT_TRACE")
    kill_at = os.environ.get("CUSTVAL_KILL_AT")
    if not trace and not kill_at:
        return
    _reached += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{_reached}\t{name}\n")
    if kill_at and int(kill_at) == _reached:
        os.kill(os.getpid(), signal.SIGKILL)
