"""The lease protocol against real processes: dead holders, pid reuse, unreadable files,
unlock, renewal, fencing and recovery. No mocks: holders are real subprocesses, killed for real.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from pipelines.errors import CustvalError, RunLockedError
from pipelines.storage import locking
from pipelines.storage.locking import LeaseError

SNAP = date(2024, 5, 1)

HOLD = textwrap.dedent("""
    import sys, time
    from datetime import date
    from pathlib import Path
    from pipelines.storage import locking
    warehouse, snapshot, run_id, holder, then = sys.argv[1:6]
    locking.acquire(Path(warehouse), date.fromisoformat(snapshot), run_id, holder=holder)
    print("ready", flush=True)
    if then == "sleep":
        time.sleep(120)
""")

Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start_holder(tmp_path: Path) -> Iterator[Start]:
    """Start a process that takes a lease, then sleeps ("sleep") or exits ("exit")."""
    procs: list[subprocess.Popen[str]] = []

    def start(
        run_id: str, *, holder: str = "process", then: str = "sleep", snapshot: date = SNAP
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(tmp_path), snapshot.isoformat(), run_id, holder, then],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        assert line == "ready\n", proc.communicate(timeout=30)
        if then == "exit":
            proc.wait(timeout=30)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def python(code: str, *args: str) -> str:
    """Run `code` in a fresh interpreter (another process); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lease(warehouse: Path, snapshot: date = SNAP) -> dict[str, Any] | None:
    return locking.read_lease(locking.lease_path(warehouse, snapshot))


def write_lease(warehouse: Path, record: dict[str, Any], snapshot: date = SNAP) -> Path:
    path = locking.lease_path(warehouse, snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def fake(run_id: str, **fields: Any) -> dict[str, Any]:
    """A lease as another run would have written it (this host, unexpired, unless overridden)."""
    now = datetime.now(UTC)
    return {
        "run_id": run_id,
        "holder": "process",
        "host": socket.gethostname(),
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pid": os.getpid(),
        "pid_start": _start_time(os.getpid()),
        "acquired_at": now.isoformat(),
        "renewed_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=6)).isoformat(),
        **fields,
    }


def _start_time(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def dead_pid(start_holder: Start) -> int:
    """The pid of a process that has come and gone (it took a lease on another snapshot)."""
    return start_holder("gone", then="exit", snapshot=date(1999, 1, 1)).pid


def takeover_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pipelines.storage.locking" and r.levelno == logging.WARNING
    ]


def in_thread(fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """Run fn in a daemon thread: (finished within timeout, its result or exception)."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), out[0] if out else None)


# ------------------------------------------------------------------------------------------
# Dead holders


def test_a_run_killed_with_kill_9_is_taken_over_with_a_warning(
    tmp_path: Path, start_holder: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pipelines.storage.locking")
    doomed = start_holder("doomed")
    with pytest.raises(RunLockedError, match="being built by run doomed"):
        locking.acquire(tmp_path, SNAP, "next")  # alive: refused
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"
    [warning] = takeover_warnings(caplog)
    assert "doomed" in warning and str(doomed.pid) in warning and "2024-05-01" in warning
    assert "no longer running" in warning


def test_a_killed_process_not_yet_reaped_counts_as_dead(
    tmp_path: Path, start_holder: Start
) -> None:
    zombie = start_holder("zombie")
    os.kill(zombie.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    locking.acquire(tmp_path, SNAP, "next")  # before the parent reaps it
    assert lease(tmp_path)["run_id"] == "next"


def test_a_reused_pid_is_not_mistaken_for_the_holder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pipelines.storage.locking")
    real_start = _start_time(os.getpid())
    write_lease(tmp_path, fake("same-pid", pid_start=real_start))
    with pytest.raises(RunLockedError):  # the pid and its start time match: that process holds it
        locking.acquire(tmp_path, SNAP, "next")
    write_lease(
        tmp_path, fake("old-owner", pid_start=real_start - 1)
    )  # the pid now runs someone else
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"
    [warning] = takeover_warnings(caplog)
    assert "old-owner" in warning and str(os.getpid()) in warning


def test_a_lease_from_before_a_reboot_is_stale(tmp_path: Path) -> None:
    write_lease(tmp_path, fake("before-reboot", boot_id="00000000-0000-0000-0000-000000000000"))
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"


def test_an_old_format_lease_of_a_dead_process_is_taken_over(
    tmp_path: Path, start_holder: Start
) -> None:
    now = datetime.now(UTC)
    write_lease(
        tmp_path,
        {
            "run_id": "v1",
            "host": socket.gethostname(),
            "pid": dead_pid(start_holder),
            "acquired_at": now.isoformat(),
            "expires_at": (now + timedelta(hours=6)).isoformat(),
        },
    )
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"


def test_a_run_lease_is_judged_by_expiry_only(
    tmp_path: Path, start_holder: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pipelines.storage.locking")
    task = start_holder("airflow-run", holder="run", then="exit")  # its first task has ended
    assert lease(tmp_path)["pid"] == task.pid and lease(tmp_path)["holder"] == "run"
    with pytest.raises(RunLockedError, match="being built by run airflow-run"):
        locking.acquire(tmp_path, SNAP, "next")
    assert locking.live_run_ids(tmp_path) == {"airflow-run"}
    write_lease(
        tmp_path,
        {**lease(tmp_path), "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()},
    )
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"
    [warning] = takeover_warnings(caplog)
    assert "airflow-run" in warning and "expired" in warning


def test_a_lease_on_another_host_is_judged_by_expiry_only(
    tmp_path: Path, start_holder: Start
) -> None:
    write_lease(
        tmp_path, fake("far", host="another-host.example", pid=dead_pid(start_holder), pid_start=1)
    )
    with pytest.raises(RunLockedError, match="being built by run far"):
        locking.acquire(tmp_path, SNAP, "next")
    write_lease(
        tmp_path,
        fake(
            "far",
            host="another-host.example",
            expires_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        ),
    )
    locking.acquire(tmp_path, SNAP, "next")
    assert lease(tmp_path)["run_id"] == "next"


def test_a_task_retry_in_a_new_process_takes_its_own_lease_again(
    tmp_path: Path, start_holder: Start
) -> None:
    first = start_holder("run-A", holder="run", then="exit")
    taken_at = lease(tmp_path)["acquired_at"]
    locking.acquire(tmp_path, SNAP, "run-A", holder="run")
    again = lease(tmp_path)
    assert again["pid"] == os.getpid() != first.pid
    assert again["acquired_at"] == taken_at  # still the same tenure


# ------------------------------------------------------------------------------------------
# Unreadable leases


UNREADABLE = {
    "empty": (b"", "empty"),
    "blank": (b"  \n", "empty"),
    "truncated": (b'{"run_id": "run-A", "host": "h", "pid": 12, "expi', "not valid JSON"),
    "not-json": (b"lease held by run-A", "not valid JSON"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
    "a-list": (b'["run-A"]', "JSON list"),
    "no-expiry": (b'{"run_id": "run-A", "host": "h", "pid": 12}', "no expires_at"),
    "no-run-id": (b'{"host": "h", "expires_at": "2999-01-01T00:00:00+00:00"}', "no run_id"),
    "bad-date": (b'{"run_id": "run-A", "expires_at": "tomorrow"}', "'tomorrow' is not an ISO 8601"),
    "bad-pid": (
        b'{"run_id": "run-A", "expires_at": "2999-01-01T00:00:00", "pid": "12"}',
        "pid '12'",
    ),
}


@pytest.mark.parametrize("content", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_lease_is_one_clear_error_at_once(
    tmp_path: Path, content: tuple[bytes, str]
) -> None:
    raw, what = content
    path = locking.lease_path(tmp_path, SNAP)
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    began = time.monotonic()
    finished, outcome = in_thread(
        lambda: locking.acquire(tmp_path, SNAP, "run-B", wait_seconds=5), timeout=10
    )
    assert finished, "acquire hangs on an unreadable lease"
    assert time.monotonic() - began < 2  # did not wait out wait_seconds either
    assert isinstance(outcome, LeaseError) and isinstance(outcome, CustvalError), outcome
    message = str(outcome)
    assert "\n" not in message
    assert str(path) in message and what in message
    assert f"custval unlock --as-of 2024-05-01 --warehouse {tmp_path} --force" in message
    with pytest.raises(LeaseError, match=what):
        locking.read_lease(path)
    with pytest.raises(LeaseError):
        locking.renew(tmp_path, SNAP, "run-A")
    assert (
        locking.release(tmp_path, SNAP, "run-A") is False and path.read_bytes() == raw
    )  # maybe not A's
    assert locking.holds(tmp_path, SNAP, "run-A") is False


def test_no_lease_reads_as_none(tmp_path: Path) -> None:
    assert locking.read_lease(locking.lease_path(tmp_path, SNAP)) is None
    assert locking.holds(tmp_path, SNAP, "run-A") is False
    assert locking.release(tmp_path, SNAP, "run-A") is False


def test_readers_never_see_half_a_lease(tmp_path: Path) -> None:
    """Another process takes, renews and gives back the lease in a loop while we read it."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import sys
        from datetime import date
        from pathlib import Path
        from pipelines.storage import locking
        wh, snap = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
        for i in range(150):
            locking.acquire(wh, snap, f"run-{i}")
            locking.renew(wh, snap, f"run-{i}")
            locking.release(wh, snap, f"run-{i}")
    """),
            str(tmp_path),
            SNAP.isoformat(),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    path, seen = locking.lease_path(tmp_path, SNAP), 0
    while writer.poll() is None:
        if locking.read_lease(path) is not None:  # LeaseError here = a half-written lease
            seen += 1
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert seen > 0


# ------------------------------------------------------------------------------------------
# unlock


def test_unlock_without_a_lease(tmp_path: Path) -> None:
    assert locking.unlock(tmp_path, SNAP) == "snapshot 2024-05-01 has no lease"


def test_unlock_removes_the_lease_of_a_dead_run(tmp_path: Path, start_holder: Start) -> None:
    dead = start_holder("dead-run", then="exit")
    message = locking.unlock(tmp_path, SNAP)
    assert "removed the lease of run dead-run on snapshot 2024-05-01" in message
    assert f"pid {dead.pid}" in message and "no longer running" in message and "\n" not in message
    assert lease(tmp_path) is None


def test_unlock_removes_an_expired_lease(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "late", ttl=timedelta(seconds=-1))
    assert "expired" in locking.unlock(tmp_path, SNAP)
    assert lease(tmp_path) is None


def test_unlock_refuses_a_live_run_unless_forced(tmp_path: Path, start_holder: Start) -> None:
    start_holder("alive")
    with pytest.raises(
        RunLockedError, match=r"run alive .* is still running on this host.*--force"
    ):
        locking.unlock(tmp_path, SNAP)
    assert lease(tmp_path)["run_id"] == "alive"
    assert "removed the lease of run alive" in locking.unlock(tmp_path, SNAP, force=True)
    assert lease(tmp_path) is None


def test_unlock_refuses_a_live_lease_it_cannot_check_unless_forced(tmp_path: Path) -> None:
    write_lease(tmp_path, fake("dag-run", holder="run"))
    with pytest.raises(RunLockedError, match="cannot be checked from this host.*--force"):
        locking.unlock(tmp_path, SNAP)
    locking.unlock(tmp_path, SNAP, force=True)
    assert lease(tmp_path) is None


def test_unlock_of_an_unreadable_lease_needs_force(tmp_path: Path) -> None:
    path = write_lease(tmp_path, {})
    path.write_text('{"run_id": "x", ')
    with pytest.raises(LeaseError, match="--force"):
        locking.unlock(tmp_path, SNAP)
    assert path.exists()
    assert (
        locking.unlock(tmp_path, SNAP, force=True)
        == f"removed the unreadable lease file {path} on snapshot 2024-05-01"
    )
    assert not path.exists()
    locking.acquire(tmp_path, SNAP, "fresh")


# ------------------------------------------------------------------------------------------
# Renewal and fencing


@pytest.mark.slow
def test_a_heartbeat_renews_the_lease(tmp_path: Path) -> None:
    ttl = timedelta(seconds=2)
    locking.acquire(tmp_path, SNAP, "long", ttl=ttl, holder="run")
    first = datetime.fromisoformat(lease(tmp_path)["expires_at"])
    with locking.Heartbeat(tmp_path, [SNAP], "long", ttl=ttl, interval=0.1) as heartbeat:
        time.sleep(2.4)  # longer than the ttl
        assert datetime.fromisoformat(lease(tmp_path)["expires_at"]) > first + timedelta(seconds=2)
        with pytest.raises(RunLockedError):  # still live: not taken over
            locking.acquire(tmp_path, SNAP, "other")
        heartbeat.check()
    stopped = lease(tmp_path)["expires_at"]
    time.sleep(0.3)
    assert lease(tmp_path)["expires_at"] == stopped  # the heartbeat stopped with the block
    time.sleep(
        max(0.0, (datetime.fromisoformat(stopped) - datetime.now(UTC)).total_seconds()) + 0.05
    )
    locking.acquire(tmp_path, SNAP, "other")  # expired now: without a heartbeat it is lost


def test_a_heartbeat_notices_a_stolen_lease(tmp_path: Path) -> None:
    ttl = timedelta(seconds=30)
    locking.acquire(tmp_path, SNAP, "long", ttl=ttl)
    with locking.Heartbeat(tmp_path, [SNAP], "long", ttl=ttl, interval=0.1) as heartbeat:
        heartbeat.check()
        assert locking.holds(tmp_path, SNAP, "long")
        out = python(
            """
            import sys
            from datetime import date
            from pathlib import Path
            from pipelines.storage import locking
            wh, snap = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
            print(locking.unlock(wh, snap, force=True))
            locking.acquire(wh, snap, "thief", holder="run")
        """,
            str(tmp_path),
            SNAP.isoformat(),
        )
        assert "removed the lease of run long" in out
        deadline = time.monotonic() + 10
        while heartbeat.failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(
            RunLockedError, match="run long lost its lease on snapshot 2024-05-01 .*thief"
        ):
            heartbeat.check()
    assert not locking.holds(tmp_path, SNAP, "long")
    assert locking.holds(tmp_path, SNAP, "thief")
    with pytest.raises(RunLockedError, match="no longer holds snapshot 2024-05-01"):
        with locking.fenced(tmp_path, SNAP, "long"):
            pytest.fail("a run that lost its lease must not publish")


def test_heartbeat_settings() -> None:
    assert locking.Heartbeat(Path("."), [SNAP], "r").interval == 60
    assert locking.Heartbeat(Path("."), [SNAP], "r", ttl=timedelta(seconds=20)).interval == 5
    for bad in (
        {"ttl": timedelta(0)},
        {"interval": float("nan")},
        {"interval": 0},
        {"ttl": timedelta(seconds=1), "interval": 2},
    ):
        with pytest.raises(ValueError):
            locking.Heartbeat(Path("."), [SNAP], "r", **bad)


def test_fenced_keeps_other_runs_out_until_the_switch_is_done(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "publisher", ttl=timedelta(seconds=0.5))
    with locking.fenced(tmp_path, SNAP, "publisher"):
        finished, _ = in_thread(lambda: locking.acquire(tmp_path, SNAP, "other"), timeout=0.9)
        assert not finished  # waits for the guard, though the lease has expired meanwhile
    deadline = time.monotonic() + 10
    while lease(tmp_path)["run_id"] != "other":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_holds(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "A")
    assert locking.holds(tmp_path, SNAP, "A") and not locking.holds(tmp_path, SNAP, "B")
    locking.acquire(tmp_path, SNAP, "A", ttl=timedelta(seconds=-1))
    assert not locking.holds(tmp_path, SNAP, "A")  # expired: anyone may take it now


def test_renew_by_a_run_that_lost_the_lease(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "A")
    with pytest.raises(
        RunLockedError, match="run B lost its lease on snapshot 2024-05-01 .*run A holds it"
    ):
        locking.renew(tmp_path, SNAP, "B")
    locking.release(tmp_path, SNAP, "A")
    with pytest.raises(
        RunLockedError, match="run A lost its lease on snapshot 2024-05-01 .no lease"
    ):
        locking.renew(tmp_path, SNAP, "A")


# ------------------------------------------------------------------------------------------
# Waiting, acquire_all, recovery


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, "5", None, True])
def test_wait_seconds_must_be_a_finite_number(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="wait_seconds"):
        locking.acquire(tmp_path, SNAP, "A", wait_seconds=bad)
    with pytest.raises(ValueError, match="wait_seconds"):
        locking.acquire_all(tmp_path, [SNAP], "A", wait_seconds=bad)
    assert lease(tmp_path) is None


def test_waiting_for_a_live_lease_ends(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "A")
    began = time.monotonic()
    finished, outcome = in_thread(
        lambda: locking.acquire(tmp_path, SNAP, "B", wait_seconds=0.3), timeout=10
    )
    assert finished and isinstance(outcome, RunLockedError)
    assert 0.3 <= time.monotonic() - began < 2


def test_acquire_all_is_all_or_nothing(tmp_path: Path) -> None:
    days = [SNAP, SNAP - timedelta(days=1), SNAP - timedelta(days=2)]
    locking.acquire(tmp_path, days[1], "other")
    with pytest.raises(RunLockedError, match="being built by run other"):
        locking.acquire_all(tmp_path, days, "mine")
    assert lease(tmp_path, days[0]) is None and lease(tmp_path, days[2]) is None  # given back
    assert lease(tmp_path, days[1])["run_id"] == "other"
    assert locking.release(tmp_path, days[1], "mine") is False  # only a run's own lease
    assert locking.release(tmp_path, days[1], "other") is True
    locking.acquire_all(tmp_path, days, "mine", holder="run")
    assert {lease(tmp_path, d)["run_id"] for d in days} == {"mine"}
    locking.release_all(tmp_path, days, "mine")
    assert not list((tmp_path / "_locks").glob("*.lease"))
    assert len(list((tmp_path / "_locks").glob("*.lock"))) == 3  # guards stay


def test_live_run_ids(tmp_path: Path, start_holder: Start) -> None:
    assert locking.live_run_ids(tmp_path) == set()  # no _locks dir at all
    days = [SNAP - timedelta(days=k) for k in range(5)]
    locking.acquire(tmp_path, days[0], "cli-live")
    locking.acquire(tmp_path, days[1], "expired", ttl=timedelta(seconds=-1))
    start_holder("cli-dead", then="exit", snapshot=days[2])
    start_holder("dag-live", holder="run", then="exit", snapshot=days[3])
    assert locking.live_run_ids(tmp_path) == {"cli-live", "dag-live"}
    bad = write_lease(tmp_path, {}, days[4])
    bad.write_text("")
    with pytest.raises(LeaseError, match="unreadable"):
        locking.live_run_ids(tmp_path)  # an unknown run may be live: delete nothing
    scan = locking.scan_leases(tmp_path)
    assert scan.live == {"cli-live", "dag-live"} and scan.unreadable == (bad,)


def test_a_heartbeat_also_renews_leases_taken_after_it_started(tmp_path: Path) -> None:
    ttl = timedelta(seconds=2)
    held = [SNAP]
    locking.acquire(tmp_path, SNAP, "long", ttl=ttl, holder="run")
    with locking.Heartbeat(tmp_path, held, "long", ttl=ttl, interval=0.1) as heartbeat:
        later = SNAP - timedelta(days=1)
        locking.acquire(tmp_path, later, "long", ttl=ttl, holder="run")
        held.append(later)  # as the pipeline's Leases.take does
        time.sleep(2.3)
        assert locking.holder_of(tmp_path, later) == "long"  # renewed, so not expired
        heartbeat.check()


def test_the_leases_of_a_run(tmp_path: Path, start_holder: Start) -> None:
    days = [SNAP - timedelta(days=k) for k in range(3)]
    assert locking.leases_of(tmp_path, "dag") == [] and locking.holder_of(tmp_path, SNAP) is None
    with pytest.raises(RunLockedError, match="run dag holds no snapshot lease"):
        locking.renew_run(tmp_path, "dag")
    for day in days[:2]:
        locking.acquire(tmp_path, day, "dag", holder="run", ttl=timedelta(minutes=1))
    locking.acquire(tmp_path, days[2], "other")
    assert locking.leases_of(tmp_path, "dag") == sorted(days[:2])
    assert (
        locking.holder_of(tmp_path, SNAP) == "dag"
        and locking.holder_of(tmp_path, days[2]) == "other"
    )
    before = lease(tmp_path)["expires_at"]
    assert locking.renew_run(tmp_path, "dag") == sorted(days[:2])  # with the default ttl
    assert lease(tmp_path)["expires_at"] > before
    assert locking.release_run(tmp_path, "dag") == sorted(days[:2])
    assert (
        locking.leases_of(tmp_path, "dag") == [] and lease(tmp_path, days[2])["run_id"] == "other"
    )
    start_holder("dead-cli", snapshot=days[0], then="exit")
    assert locking.holder_of(tmp_path, days[0]) is None  # stale: free to take
    write_lease(tmp_path, {}, days[1]).write_text("{")
    with pytest.raises(LeaseError):
        locking.holder_of(tmp_path, days[1])


def test_a_heartbeat_that_cannot_renew_for_a_whole_ttl_gives_up(tmp_path: Path) -> None:
    ttl = timedelta(seconds=2)
    locking.acquire(tmp_path, SNAP, "long", ttl=ttl, holder="run")
    with locking.Heartbeat(tmp_path, [SNAP], "long", ttl=ttl, interval=0.1) as heartbeat:
        locking.lease_path(tmp_path, SNAP).write_text("")  # what a full disk left behind
        time.sleep(0.4)
        heartbeat.check()  # retried for now: it may pass
        deadline = time.monotonic() + 5
        while heartbeat.failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
    with pytest.raises(
        RunLockedError, match="run long could not renew its lease on snapshot 2024-05-01"
    ):
        heartbeat.check()
