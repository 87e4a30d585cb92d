"""Long-lived sandboxes: nothing of one sample reaches the next one in the same sandbox.

Each test runs on a uid pool of one slot of its own, so consecutive samples go
through the same long-lived sandbox (checked with ``details["fork_server"]``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from curation.sandbox import bwrap as sandbox_bwrap
from curation.sandbox.bwrap import SandboxLimits, UidPool, probe_bwrap
from curation.sandbox.execute import CodeJob, CodeResult, run_code

needs_sandbox = pytest.mark.skipif(probe_bwrap() is not None, reason="bubblewrap sandbox unavailable here")

LEAVE_TRACES = CodeJob(
    textwrap.dedent(
        """
        import os, signal, time
        def leave_traces():
            with open("/tmp/left-behind", "w") as fh:
                fh.write("first sample")
            with open("/dev/shm/left-behind", "w") as fh:
                fh.write("first sample")
            os.makedirs("/tmp/locked/deeper")
            open("/tmp/locked/deeper/file", "w").close()
            os.chmod("/tmp/locked/deeper", 0)
            os.chmod("/tmp/locked", 0)
            os.chmod("/tmp", 0o500)
            os.environ["LEFT_BEHIND"] = "first sample"
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                        signal.signal(sig, signal.SIG_IGN)
                    while True:
                        time.sleep(1)
                os._exit(0)
            os.wait()
            return True
        """
    ),
    "assert leave_traces()\n",
)

FIND_TRACES = CodeJob(
    textwrap.dedent(
        """
        import os
        def traces():
            found = [os.path.join(d, name) for d in ("/tmp", "/dev/shm") for name in os.listdir(d)]
            if "LEFT_BEHIND" in os.environ:
                found.append("environment")
            if not os.access("/tmp", os.W_OK):
                found.append("/tmp not writable")
            mine = {1, os.getpid(), os.getppid()}  # the fork server, this process, its judge
            found += ["process " + p for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine]
            return found
        """
    ),
    "found = traces()\nassert not found, found\n",
)


POOL_BASE = 61940  # the uid of the one-slot pools here


@pytest.fixture
def one_slot(tmp_path: Path) -> Iterator[Callable[[CodeJob], CodeResult]]:
    """run(job) on a uid pool of one slot; its sandboxes are closed afterwards."""
    pool = UidPool(base=POOL_BASE, size=1, lock_dir=tmp_path)
    yield lambda job: run_code(job, limits=SandboxLimits(cpu_seconds=2.0), pool=pool)
    sandbox_bwrap.SHELF.close_all()


@needs_sandbox
def test_nothing_of_a_sample_reaches_the_next_in_the_same_sandbox(
    one_slot: Callable[[CodeJob], CodeResult],
) -> None:
    first = one_slot(LEAVE_TRACES)
    second = one_slot(FIND_TRACES)
    assert first.passed is True, first.details
    assert second.passed is True, second.details["tests"]
    assert first.details["fork_server"]["pid"] == second.details["fork_server"]["pid"]
    assert second.details["fork_server"]["run"] == first.details["fork_server"]["run"] + 1


@needs_sandbox
def test_the_trace_check_sees_what_an_unswept_sandbox_keeps(
    one_slot: Callable[[CodeJob], CodeResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the sweep (a private switch for this test only) the same check finds the
    files and the background process: it is not blind. The environment stays clean even
    so: each sample's processes are forked fresh from a fork server that runs no sample."""
    monkeypatch.setattr(sandbox_bwrap, "_SWEEP_BETWEEN_RUNS", False)
    first = one_slot(LEAVE_TRACES)
    second = one_slot(FIND_TRACES)
    assert first.passed is True, first.details
    assert second.details["fork_server"]["pid"] == first.details["fork_server"]["pid"]
    assert second.passed is False
    error = second.details["tests"][0]["error"]
    for trace in ("/tmp/left-behind", "/dev/shm/left-behind", "/tmp/locked", "/tmp not writable", "process "):
        assert trace in error, error
    assert "environment" not in error


@needs_sandbox
def test_a_sandbox_with_sysv_ipc_left_is_replaced(one_slot: Callable[[CodeJob], CodeResult]) -> None:
    """SysV IPC objects outlive their processes; the sweep cannot list them as files, so
    a sandbox left with one is discarded and the next sample gets a new one."""
    shm = CodeJob(
        "import ctypes\ndef keep_segment():\n"
        "    return ctypes.CDLL(None).shmget(0x5A5A, 4096, 0o1600) >= 0\n",
        "assert keep_segment()\n",
    )
    look = CodeJob(
        "def segments():\n    return open('/proc/sysvipc/shm').read().splitlines()[1:]\n",
        "assert segments() == []\n",
    )
    first = one_slot(shm)
    second = one_slot(look)
    assert first.passed is True, first.details
    assert second.passed is True, second.details["tests"]
    assert second.details["fork_server"]["pid"] != first.details["fork_server"]["pid"]
    assert second.details["fork_server"]["run"] == 1


@needs_sandbox
def test_posix_message_queues_cannot_be_created(one_slot: Callable[[CodeJob], CodeResult]) -> None:
    """POSIX message queues cannot be listed to sweep, so a long-lived sandbox has none."""
    queue = CodeJob(
        "import ctypes\ndef open_queue():\n"
        "    return ctypes.CDLL(None).mq_open(b'/left-behind', 0o100 | 0o2, 0o600, None)\n",
        "assert open_queue() == -1\n",
    )
    result = one_slot(queue)
    assert result.passed is True, result.details["tests"]



@pytest.fixture
def left_at_release(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The processes of the uid found each time a slot is swept (when it is taken
    after a crash and when it is released)."""
    found: list[list[int]] = []
    sweep = sandbox_bwrap.sweep_uid

    def recording_sweep(uid: int, timeout: float = 10.0) -> bool:
        found.append(sandbox_bwrap.uid_processes(uid))
        return sweep(uid, timeout)

    monkeypatch.setattr(sandbox_bwrap, "sweep_uid", recording_sweep)
    return found


@needs_sandbox
def test_a_closed_sandbox_leaves_no_process_of_its_uid(
    one_slot: Callable[[CodeJob], CodeResult], left_at_release: list[list[int]]
) -> None:
    """Closing lets the fork server end and bwrap reap it: nothing is left for the
    host's init to reap (a zombie of the uid would hold the slot until init got round
    to it, a second or more on some hosts)."""
    assert one_slot(FIND_TRACES).passed is True
    sandbox_bwrap.SHELF.close_all()
    assert left_at_release and not any(left_at_release), left_at_release


@needs_sandbox
def test_a_sandbox_killed_mid_run_leaves_no_process_of_its_uid(
    tmp_path: Path, left_at_release: list[list[int]]
) -> None:
    """A run the host has to stop (here: too much output) kills the sandbox's pid 1;
    no process of the sandbox is left when its slot is released, and the next run gets
    a new sandbox."""
    pool = UidPool(base=POOL_BASE, size=1, lock_dir=tmp_path)
    limits = SandboxLimits(cpu_seconds=2.0, max_output_bytes=1 << 16)
    flood = CodeJob("def flood():\n    while True:\n        print('x' * 4096)\n", "flood()\n")
    try:
        first = run_code(flood, limits=limits, pool=pool)
        assert first.reason.startswith("output limit exceeded"), first.reason
        second = run_code(FIND_TRACES, limits=limits, pool=pool)
        assert second.passed is True, second.details
        assert second.details["fork_server"]["pid"] != first.details["fork_server"]["pid"]
    finally:
        sandbox_bwrap.SHELF.close_all()
    assert len(left_at_release) >= 2 and not any(left_at_release), left_at_release
