"""Start the harness in a bubblewrap sandbox (or, by explicit opt-in, with rlimits only).

One sandbox serves many runs: ``prlimit ... -- bwrap ... -- python3 ... <harness> FD
fork-server``, started as an unprivileged uid from a pool when the host runs as root,
and kept (per process, `SHELF`) for up to MAX_RUNS_PER_SANDBOX runs. Its pid 1 is the
harness as a fork server: per run the host sends it, over a socket pair, fresh
stdin/stdout/stderr/report pipes; it forks a judge (which forks the candidate) exactly
as a fresh sandbox would start one, and after it kills and reaps every other process,
empties /tmp and /dev/shm and checks SysV IPC; a sandbox that is not clean after that,
or timed out, or overflowed its output, is discarded (`harness.serve_forks`). The
host writes the candidate's code, then the tests and a random token, on the judge's
stdin; it reads stdout/stderr with a cap and the judge's report on a private pipe.
Starting bwrap and Python once instead of per run is what makes the sandbox as fast
as a bare subprocess (benchmarks/verify_code.py). The rlimits-only and bare modes
still start one process per run.

What the sandbox is
-------------------
New user, pid, network (loopback only), ipc, uts and cgroup namespaces, and no
further user namespaces inside (``--disable-userns``); read-only /usr (with the
/bin, /lib* symlinks) and /etc/ld.so.cache only: no /work, /root, /home, project or
database; a fresh /proc and minimal /dev, both read-only apart from a small
/dev/shm; a size-capped private /tmp; a cleared environment; a new session; killed
with its parent (``--die-with-parent``); the fork server is pid 1, so nothing inside can
signal it (a candidate can kill its judge: the run then has no report and fails). The distribution's /usr/bin/python3 runs the code, with rlimits (CPU,
address space, file size, open files, processes, no core) set by ``prlimit`` before
bwrap starts and tightened by the judge for the candidate. The wall clock, a
generous backstop to the CPU limit, kills the run's process group (and so, through
``--die-with-parent``, the sandbox).

Why a uid pool
--------------
RLIMIT_NPROC counts every process of a uid, and with user namespaces the count that
decides whether bwrap may even create the sandbox is the uid's count on the whole
host (checked against the limit of the process creating the namespace). Processes of
a sandbox that is still being torn down, or of another sandbox running at the same
time under the same uid, count too: "bwrap: Can't fork for pid 1: Resource
temporarily unavailable" on correct code. So each concurrent run takes its own uid
(``UidPool``: slot n -> uid 61000 + n, held with ``flock`` so separate processes never
share one) and a slot whose last run did not end cleanly is swept (every process of
that uid killed and waited for) before reuse. A run that fails before the candidate
was even started is retried on a swept slot, so correct code never fails for that.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import math
import os
import pwd
import secrets
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODE_BWRAP = "bwrap"
MODE_RLIMITS = "rlimits-only"
#: No isolation and no limits at all: the benchmark's baseline, never for model output.
MODE_BARE = "bare"

UNSANDBOXED_ENV = "ASSAY_ALLOW_UNSANDBOXED_CODE"
INSTALL_HINT = "apt-get install bubblewrap"
#: The bubblewrap binary to use instead of `bwrap` on PATH (a node's own install).
BWRAP_ENV = "ASSAY_BWRAP"
TOKEN_BYTES = 16
REPORT_CAP = 16 << 20
#: The environment of host commands (probes, bwrap itself): the system's binaries only.
_MINIMAL_ENV = {"PATH": "/usr/bin:/bin"}
_SANDBOX_ENV = {
    **_MINIMAL_ENV,
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}
#: -s/-S: no user or site packages; -B: write no bytecode; -P: never put the (writable)
#: working directory on sys.path, so the candidate cannot plant modules for the judge.
_PYTHON_FLAGS = ("-s", "-S", "-B", "-P", "-X", "utf8")


class SandboxError(RuntimeError):
    """The sandbox itself could not be used (not the candidate's fault)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run. Time is CPU time; the wall clock is a backstop."""

    cpu_seconds: float = 5.0
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 16 << 20
    open_files: int = 64
    processes: int = 32
    tmp_bytes: int = 64 << 20
    wall_seconds: float | None = None
    #: How much of stdout / stderr is kept (each); the rest is read and dropped.
    capture_bytes: int = 16 << 10
    #: stdout + stderr beyond this kills the run.
    max_output_bytes: int = 8 << 20

    @property
    def wall(self) -> float:
        return self.wall_seconds if self.wall_seconds is not None else 4 * self.cpu_seconds + 5


@dataclass
class HarnessRun:
    """What came back from one sandbox run, before interpretation."""

    mode: str
    report: dict[str, Any] | None
    problem: str | None = None
    launched: bool = False
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    timed_out: bool = False
    output_exceeded: bool = False
    wall_ms: float = 0.0
    uid: int | None = None
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    #: For a run in a long-lived sandbox: its fork server's host pid (bwrap's) and
    #: which of its runs this was (1 = first), so reuse can be seen and checked.
    fork_server: tuple[int, int] | None = None


# ------------------------------------------------------------------ environment


def harness_source() -> str:
    return _harness_source()


@functools.cache
def _harness_source() -> str:
    return (Path(__file__).with_name("harness.py")).read_text(encoding="utf-8")


#: Loads the precompiled harness from the last argument and runs it as __main__.
_BOOT = "import marshal,binascii,sys;exec(marshal.loads(binascii.a2b_base64(sys.argv.pop())))"
_MAX_ARG = 120_000  # one argv string may not exceed 128 KiB (MAX_ARG_STRLEN)


@functools.cache
def _harness_blob(python: str) -> str | None:
    """The harness compiled by the sandbox's own interpreter, marshalled, base64.

    Compiling 30 kB of source on every run costs more than the whole sandbox setup;
    loading marshalled code costs ~1 ms. Compiled once per process, by the same
    interpreter that will load it (marshal is not portable across versions)."""
    program = (
        "import sys,marshal,binascii;sys.stdout.write(binascii.b2a_base64(marshal.dumps("
        "compile(sys.stdin.read(),'<harness>','exec',optimize=2)),newline=False).decode())"
    )
    done = _host_command([python, *_PYTHON_FLAGS, "-c", program], timeout=60, stdin=harness_source())
    if done is None:
        return None
    blob = done.stdout.strip()
    return blob if done.returncode == 0 and blob and len(blob) < _MAX_ARG else None


def _host_command(
    argv: list[str], *, timeout: float, stdin: str | None = None, env: dict[str, str] | None = _MINIMAL_ENV
) -> subprocess.CompletedProcess[str] | None:
    """Run a short trusted command on the host (a probe, the harness compile) and
    capture its text output; None if it could not start or did not finish in time."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return None


def _harness_argv(python: str, report_fd: int, kill_scope: str) -> list[str]:
    blob = _harness_blob(python)
    if blob is None:
        return [python, *_PYTHON_FLAGS, "-c", harness_source(), str(report_fd), kill_scope]
    return [python, *_PYTHON_FLAGS, "-c", _BOOT, str(report_fd), kill_scope, blob]


def bwrap_path() -> str | None:
    configured = os.environ.get(BWRAP_ENV, "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("bwrap")
    if found:
        return found
    return "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None


@functools.cache
def _bwrap_version() -> tuple[int, ...]:
    path = bwrap_path()
    if not path:
        return ()
    done = _host_command([path, "--version"], timeout=10, env=None)
    try:
        return tuple(int(p) for p in done.stdout.split()[-1].split(".")) if done is not None else ()
    except (ValueError, IndexError):
        return ()


def _python_ok(path: str) -> bool:
    done = _host_command([path, "-S", "-c", "import sys; print(sys.version_info >= (3, 11))"], timeout=20)
    return done is not None and done.stdout.strip() == "True"


@functools.cache
def sandbox_python() -> tuple[str, tuple[str, ...]] | None:
    """(interpreter, extra read-only bind paths) for code in the sandbox, or None.

    The sandbox sees /usr but not /work, /root or the project, so a virtualenv's
    python (which lives in the project) cannot be used. Prefer the distribution's
    /usr/bin/python3; else the base interpreter of the running Python (e.g. a pyenv
    install), with only its install prefix bound read-only at the same path."""
    override = os.environ.get("ASSAY_SANDBOX_PYTHON")
    for candidate in (override, "/usr/bin/python3", "/usr/local/bin/python3"):
        if candidate and os.access(candidate, os.X_OK) and _python_ok(candidate):
            prefix = Path(candidate).resolve().parent.parent
            binds = () if str(prefix).startswith("/usr") else (str(prefix),)
            return candidate, binds
    base = Path(sys.base_prefix)
    exe = base / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    project = Path(__file__).resolve().parents[2]
    if exe.exists() and project not in exe.resolve().parents and _python_ok(str(exe)):
        return str(exe), (str(base),)
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------- uid pool


def _real_uid(pid: int) -> int | None:
    """From /proc/PID/status, which (unlike the owner of /proc/PID) dumpability cannot hide."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def uid_processes(uid: int) -> list[int]:
    """Pids of the processes (zombies included) whose real uid is `uid`."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and _real_uid(int(name)) == uid]


def _kill_if(pid: int, still_it: Callable[[int], bool]) -> None:
    """SIGKILL `pid` only if `still_it(pid)` holds once a pidfd pins the process, so a
    pid reused in between cannot be hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if still_it(pid):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def sweep_uid(uid: int, timeout: float = 10.0) -> bool:
    """Kill every process of `uid` and wait until they are gone (reaped), so none of
    them still counts against RLIMIT_NPROC. False if some would not go in time.

    Our own children among them (the bwrap of a long-lived sandbox) are reaped here:
    nobody else can, and as zombies they would still count."""
    deadline = time.monotonic() + timeout
    while True:
        pids = uid_processes(uid)
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            _kill_if(pid, lambda p: _real_uid(p) == uid)
            _reap_if_own_child(pid)
        time.sleep(0.01)


def _reap_if_own_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (or already reaped)


@dataclass
class Slot:
    uid: int
    dirty: bool = False


class UidPool:
    """Unprivileged uids for concurrent runs, one per run, shared safely across processes.

    Slot n is uid ``base + n``; it is held with an exclusive ``flock`` on its own lock
    file for the duration of one run. The first byte of the file is ``c`` when the
    last run on the slot ended cleanly; otherwise (crash, kill, timeout, rlimits-only
    run whose processes are not confined to a pid namespace) the next holder sweeps
    the uid first. Sweeping kills every process of the uid, so the range must belong
    to no one else: uids with an account are never used, and the range can be moved
    with ``ASSAY_SANDBOX_UID_BASE`` / ``ASSAY_SANDBOX_UID_SLOTS``."""

    def __init__(
        self, base: int | None = None, size: int | None = None, lock_dir: Path | None = None
    ) -> None:
        self.base = base if base is not None else int(os.environ.get("ASSAY_SANDBOX_UID_BASE", "61000"))
        size = size if size is not None else int(os.environ.get("ASSAY_SANDBOX_UID_SLOTS", "64"))
        self.slots = [n for n in range(size) if not _has_account(self.base + n)]
        self.size = len(self.slots)
        if not self.slots:
            raise SandboxError(f"no usable sandbox uid in {self.base}..{self.base + size - 1}")
        self.lock_dir = lock_dir or _default_lock_dir()
        self._next = os.getpid() % self.size

    def _open(self, n: int) -> int:
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.lock_dir / f"slot-{n:03d}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @contextmanager
    def slot(self, wait: float = 120.0) -> Iterator[Slot]:
        fd, n = self._acquire(wait)
        slot = Slot(self.base + n)
        try:
            os.pwrite(fd, b"d", 0)
            yield slot
        finally:
            try:
                if not slot.dirty or sweep_uid(slot.uid):
                    os.pwrite(fd, b"c", 0)
            finally:
                os.close(fd)  # releases the flock

    def _acquire(self, wait: float) -> tuple[int, int]:
        deadline = time.monotonic() + wait
        while True:
            start = self._next
            self._next = (self._next + 1) % self.size
            for i in range(self.size):
                n = self.slots[(start + i) % self.size]
                fd = self._open(n)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                if os.pread(fd, 1, 0) == b"c" or sweep_uid(self.base + n, timeout=2.0):
                    return fd, n
                os.close(fd)  # processes that will not die: leave this slot dirty, try another
            if time.monotonic() > deadline:
                raise SandboxError(f"no free sandbox uid slot in {self.lock_dir} after {wait:g}s")
            time.sleep(0.05)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _default_lock_dir() -> Path:
    if _is_root() and os.access("/run", os.W_OK):
        return Path("/run/assay-sandbox")
    return Path(tempfile.gettempdir()) / f"assay-sandbox-{os.geteuid()}"


@functools.cache
def default_pool() -> UidPool:
    return UidPool()


# ---------------------------------------------------------------------- commands


def _prlimit(
    limits: SandboxLimits, nproc: int | None, cpu: int | None = None, no_queues: bool = False
) -> list[str]:
    """rlimits applied to the process before it execs bwrap/python (thread-safe,
    unlike preexec_fn). CPU here is only a backstop: the judge gives the candidate
    its own, tighter RLIMIT_CPU and watches the sandbox's total CPU time."""
    cpu = cpu or math.ceil(limits.wall)
    out = [
        shutil.which("prlimit") or "/usr/bin/prlimit",
        f"--cpu={cpu}:{cpu}",
        f"--as={limits.memory_bytes}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
    ]
    if nproc is not None:
        out.append(f"--nproc={nproc}")
    if no_queues:
        out.append("--msgqueue=0")
    return [*out, "--"]


def bwrap_args(limits: SandboxLimits, extra_ro: tuple[str, ...] = ()) -> list[str]:
    """The bubblewrap command line up to (and including) ``--``."""
    path = bwrap_path()
    if path is None:
        raise SandboxError(f"bubblewrap is not installed: {INSTALL_HINT}")
    args = [path, "--unshare-all", "--unshare-user"]
    if _bwrap_version() >= (0, 8):
        args.append("--disable-userns")
    args += ["--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "sandbox", "--clearenv"]
    for key, value in _SANDBOX_ENV.items():
        args += ["--setenv", key, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", etc, etc]
    for extra in extra_ro:
        args += ["--ro-bind", extra, extra]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(min(limits.tmp_bytes, 8 << 20)), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    args += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp", "--remount-ro", "/", "--"]
    return args


@functools.cache
def probe_bwrap() -> str | None:
    """None if a bubblewrap sandbox can be started here, else why not."""
    if bwrap_path() is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    found = sandbox_python()
    if found is None:
        return "no Python >= 3.11 outside the project for the sandbox (install python3)"
    python, extra = found
    argv = bwrap_args(SandboxLimits(), extra) + [python, "-S", "-c", "pass"]
    try:
        if _is_root():
            with default_pool().slot() as slot:
                proc = subprocess.run(
                    argv, capture_output=True, timeout=30, env=_MINIMAL_ENV, **_as_user(slot.uid)
                )
        else:
            proc = subprocess.run(argv, capture_output=True, timeout=30, env=_MINIMAL_ENV)
    except (OSError, subprocess.SubprocessError, SandboxError) as exc:
        return f"bubblewrap cannot start a sandbox: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[:300]
        return f"bubblewrap cannot start a sandbox here (user namespaces disabled?): {err}"
    return None


def _as_user(uid: int) -> dict[str, Any]:
    return {"user": uid, "group": uid, "extra_groups": []}


def _own_process_count() -> int:
    return len(uid_processes(os.getuid()))


# -------------------------------------------------------------------------- runs


def _msg(obj: Any) -> bytes:
    data = json.dumps(obj, ensure_ascii=True).encode()
    return b"%010d" % len(data) + data


def run_harness(
    code: str,
    tests: str,
    entry_point: str | None,
    *,
    prelude: str | None = None,
    limits: SandboxLimits | None = None,
    mode: str = MODE_BWRAP,
    pool: UidPool | None = None,
    retries: int = 2,
) -> HarnessRun:
    """Run `tests` against `code` in one fresh sandbox and return the raw outcome.

    `prelude`: trusted code (the prompt) run before the tests in their namespace.
    Retries (on a swept uid) when the sandbox failed before the candidate process
    existed: that is never the candidate's doing."""
    limits = limits or SandboxLimits()
    spec = {"tests": tests, "entry_point": entry_point, "prelude": prelude}
    run = HarnessRun(mode=mode, report=None)
    for attempt in range(retries + 1):
        run = _run_once(code, spec, limits, mode, pool)
        run.attempts = attempt + 1
        if run.launched or run.timed_out or run.output_exceeded:
            return run
        time.sleep(0.05 * (attempt + 1) ** 2)
    run.problem = f"sandbox failed to start: {run.stderr.strip()[:300] or run.problem or 'no output'}"
    return run


def _run_once(
    code: str, spec: dict[str, Any], limits: SandboxLimits, mode: str, pool: UidPool | None
) -> HarnessRun:
    found = sandbox_python()
    if found is None:
        raise SandboxError("no Python >= 3.11 outside the project for the sandbox")
    python, extra_ro = found
    if mode == MODE_BWRAP:
        return _run_in_server(code, spec, limits, python, extra_ro, pool)
    if _is_root() and mode != MODE_BARE:
        with (pool or default_pool()).slot() as slot:
            run = _spawn(code, spec, limits, mode, python, extra_ro, slot)
            slot.dirty = run.problem is not None or slot.dirty
            return run
    return _spawn(code, spec, limits, mode, python, extra_ro, None)


def _harness_config(code: str, limits: SandboxLimits, nproc: int, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "cpu_seconds": limits.cpu_seconds,
        "wall_seconds": limits.wall,
        "memory_bytes": limits.memory_bytes,
        "nproc": nproc,
        **extra,
    }


def _spawn(
    code: str,
    spec: dict[str, Any],
    limits: SandboxLimits,
    mode: str,
    python: str,
    extra_ro: tuple[str, ...],
    slot: Slot | None,
) -> HarnessRun:
    """One run in a process of its own: rlimits only, or bare (the benchmark's baseline)."""
    token = secrets.token_hex(TOKEN_BYTES).encode()
    report_r, report_w = os.pipe()
    inner = _harness_argv(python, report_w, "all" if slot is not None else "group")
    env = dict(_SANDBOX_ENV)
    cwd: str | None = "/"
    workdir: str | None = None
    warnings: list[str] = []
    if mode == MODE_RLIMITS:
        workdir = tempfile.mkdtemp(prefix="assay-sbx-")
        if slot is not None:
            os.chown(workdir, slot.uid, slot.uid)
        env.update(HOME=workdir, TMPDIR=workdir)
        cwd = workdir
        nproc = limits.processes + 2 if slot else _own_process_count() + limits.processes
        argv = _prlimit(limits, nproc) + inner
        warnings.append(
            "code ran WITHOUT a sandbox (rlimits only): it could read files and use the network; "
            f"install bubblewrap ({INSTALL_HINT})"
        )
    elif mode == MODE_BARE:
        argv = inner
    else:
        raise ValueError(f"unknown sandbox mode {mode!r}")
    stdin_data = _msg(_harness_config(code, limits, 0)) + _msg(spec) + token
    started = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(report_w,),
                env=env,
                cwd=cwd,
                # own session, hence own process group (the wall clock kills it) and,
                # with sched_autogroup, the same CPU share whatever the mode
                start_new_session=True,
                **(_as_user(slot.uid) if slot else {}),
            )
        finally:
            os.close(report_w)
        try:
            run, raw_report = _pump(proc, report_r, stdin_data, limits, mode)
        finally:
            os.close(report_r)
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    run.wall_ms = (time.monotonic() - started) * 1000
    run.uid = slot.uid if slot else None
    run.warnings = warnings
    if slot is not None:
        slot.dirty = True  # not confined to a pid namespace: processes may outlive the run
    _read_report(run, raw_report, token)
    return run


# ------------------------------------------------------------ long-lived sandboxes

#: The harness's fork-server KILL_SCOPE values (harness.ZYGOTE / ZYGOTE_UNSWEPT).
_FORK_SERVER = "fork-server"
_FORK_SERVER_UNSWEPT = "fork-server-unswept"
#: Private, for one test only: False shows what the sweep between runs prevents.
_SWEEP_BETWEEN_RUNS = True
#: Runs per sandbox before it is replaced (its fork server's own CPU time adds up
#: against the sandbox's CPU rlimit, and a long-lived process is a risk in itself).
MAX_RUNS_PER_SANDBOX = 400
#: A sandbox unused this long is closed, giving its uid slot back.
IDLE_SECONDS = 30.0
#: The fork server's CPU rlimit; each judge lowers its own to the run's backstop.
_SERVER_CPU_SECONDS = 600
_ANSWER_SECONDS = 10.0
#: How long a closed sandbox may take to end by itself before it is killed.
_CLOSE_SECONDS = 2.0


def _kill_children(pid: int) -> bool:
    """SIGKILL the children of `pid` (which must be ours, not yet reaped, so its
    children stay its own until it reaps them); False if none were found."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = [int(child) for child in fh.read().split()]
    except (OSError, ValueError):
        return False
    for child in children:
        _kill_if(child, lambda p: _parent_pid(p) == pid)
    return bool(children)


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class ForkServerSandbox:
    """A long-lived bubblewrap sandbox on one uid slot: the harness as pid 1 forks a
    fresh judge per run and sweeps the sandbox after it (see harness.serve_forks)."""

    key: tuple[Any, ...]
    proc: subprocess.Popen[bytes]
    control: socket.socket
    slot_hold: ExitStack
    slot: Slot | None
    runs: int = 0
    idle_since: float = 0.0

    def kill(self) -> None:
        """End the sandbox by killing its pid 1, the fork server: the kernel then ends
        every other process of the sandbox, and bwrap, pid 1's parent, reaps it and
        exits. Killing bwrap instead would orphan pid 1 to the host's init, and until
        that init reaps it (a second or more on some hosts) the uid slot is not free."""
        if self.proc.poll() is not None:
            return  # reaped (perhaps by sweep_uid): its pid may belong to someone else now
        if not _kill_children(self.proc.pid):
            self._kill_bwrap()

    def _kill_bwrap(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def answered(self) -> bool:
        """Has the fork server answered (the run is over and the sandbox swept)?"""
        return bool(select.select([self.control], [], [], 0)[0])

    def answer(self) -> tuple[int, bool] | None:
        """The fork server's ``[wait status of the judge, sandbox clean]`` after a run."""
        self.control.settimeout(_ANSWER_SECONDS)
        try:
            head = self.control.recv(10, socket.MSG_WAITALL)
            body = self.control.recv(int(head), socket.MSG_WAITALL) if head.isdigit() else b""
            status, clean = json.loads(body)
        except (OSError, ValueError, TypeError):
            return None
        return (status, clean is True) if type(status) is int else None

    def close(self) -> None:
        self.control.close()  # the fork server returns, the sandbox ends, bwrap exits
        try:
            self.proc.wait(timeout=_CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            try:
                self.proc.wait(timeout=_CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill_bwrap()
                self.proc.wait()
        if self.slot is not None:
            self.slot.dirty = True  # sweep the uid before the slot is used again
        self.slot_hold.close()


class SandboxShelf:
    """This process's idle long-lived sandboxes, by (uid pool, interpreter, limits).

    Sandboxes are started from one long-lived thread: bwrap's --die-with-parent
    follows the thread that started it, and run_many's threads come and go. After a
    fork the child forgets its parent's sandboxes (they are the parent's to use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Any, ...], list[ForkServerSandbox]] = {}
        self._starter: ThreadPoolExecutor | None = None

    def take(self, key: tuple[Any, ...], start: Callable[[], ForkServerSandbox]) -> ForkServerSandbox:
        with self._lock:
            stale = self._expire()
            found = self._idle.get(key)
            sandbox = found.pop() if found else None
            if sandbox is None and self._starter is None:
                self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-start")
            starter = self._starter
        for old in stale:
            old.close()
        if sandbox is not None:
            return sandbox
        assert starter is not None
        return starter.submit(start).result()

    def give_back(self, sandbox: ForkServerSandbox) -> None:
        sandbox.idle_since = time.monotonic()
        with self._lock:
            self._idle.setdefault(sandbox.key, []).append(sandbox)

    def _expire(self) -> list[ForkServerSandbox]:
        deadline = time.monotonic() - IDLE_SECONDS
        stale = []
        for sandboxes in self._idle.values():
            stale += [s for s in sandboxes if s.idle_since < deadline]
            sandboxes[:] = [s for s in sandboxes if s.idle_since >= deadline]
        return stale

    def close_all(self) -> None:
        with self._lock:
            idle = [s for sandboxes in self._idle.values() for s in sandboxes]
            self._idle.clear()
        for sandbox in idle:
            sandbox.close()

    def forget(self) -> None:
        """In a forked child: drop (without touching) the parent's sandboxes."""
        for sandboxes in self._idle.values():
            for sandbox in sandboxes:
                sandbox.control.close()
        self._lock = threading.Lock()
        self._idle = {}
        self._starter = None


SHELF = SandboxShelf()
atexit.register(SHELF.close_all)
os.register_at_fork(after_in_child=SHELF.forget)


def _server_key(
    limits: SandboxLimits, python: str, extra_ro: tuple[str, ...], pool: UidPool | None
) -> tuple[Any, ...]:
    """What a long-lived sandbox is fixed to: everything but the per-run CPU and wall time."""
    where = (pool.base, pool.size, str(pool.lock_dir)) if pool is not None else None
    sized = (
        limits.memory_bytes,
        limits.file_size_bytes,
        limits.open_files,
        limits.processes,
        limits.tmp_bytes,
    )
    return (where, python, extra_ro, sized)


def _start_server(
    key: tuple[Any, ...], limits: SandboxLimits, python: str, extra_ro: tuple[str, ...], pool: UidPool | None
) -> ForkServerSandbox:
    hold = ExitStack()
    slot = None
    if pool is not None:
        try:
            slot = hold.enter_context(pool.slot(wait=0.5))
        except SandboxError:
            SHELF.close_all()  # our own idle sandboxes may hold every slot
            slot = hold.enter_context(pool.slot())
    try:
        host_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        scope = _FORK_SERVER if _SWEEP_BETWEEN_RUNS else _FORK_SERVER_UNSWEPT
        # the uid's host-wide cap also counts bwrap and the fork server
        # no POSIX message queues: unlike files and SysV IPC, they cannot be listed to sweep
        argv = _prlimit(limits, limits.processes + 5 if slot else None, _SERVER_CPU_SECONDS, no_queues=True)
        argv += bwrap_args(limits, extra_ro) + _harness_argv(python, sandbox_end.fileno(), scope)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(sandbox_end.fileno(),),
                env=dict(_MINIMAL_ENV),
                cwd="/",
                start_new_session=True,
                **(_as_user(slot.uid) if slot else {}),
            )
        finally:
            sandbox_end.close()
    except BaseException:
        if slot is not None:
            slot.dirty = True
        hold.close()
        raise
    return ForkServerSandbox(key, proc, host_end, hold, slot)


def _run_in_server(
    code: str,
    spec: dict[str, Any],
    limits: SandboxLimits,
    python: str,
    extra_ro: tuple[str, ...],
    pool: UidPool | None,
) -> HarnessRun:
    """One run in a long-lived sandbox of this process (started if none is idle)."""
    uid_pool = (pool or default_pool()) if _is_root() else None
    key = _server_key(limits, python, extra_ro, uid_pool)
    run = HarnessRun(mode=MODE_BWRAP, report=None)
    started = time.monotonic()
    try:
        sandbox = SHELF.take(key, lambda: _start_server(key, limits, python, extra_ro, uid_pool))
    except (OSError, SandboxError) as exc:
        run.problem = f"could not start a sandbox: {exc}"
        return run
    token = secrets.token_hex(TOKEN_BYTES).encode()
    cfg = _harness_config(code, limits, limits.processes, cpu_backstop=math.ceil(limits.wall))
    stdin_data = _msg(cfg) + _msg(spec) + token
    pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, report
    host_ends = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]]
    sandbox_ends = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
    try:
        try:
            socket.send_fds(sandbox.control, [b"R"], sandbox_ends)
            sent = True
        except OSError:
            sent = False
        finally:
            for fd in sandbox_ends:
                os.close(fd)
        if not sent:
            os.close(host_ends[0])
            sandbox.close()
            run.problem = "the sandbox's fork server is gone"
            return run
        stdin_open = [True]

        def close_stdin() -> None:
            if stdin_open[0]:
                stdin_open[0] = False
                os.close(host_ends[0])

        try:
            run, raw_report = _pump_streams(
                host_ends[0],
                host_ends[1],
                host_ends[2],
                host_ends[3],
                stdin_data,
                limits,
                MODE_BWRAP,
                close_stdin=close_stdin,
                kill=sandbox.kill,
                exited=sandbox.answered,
            )
        finally:
            close_stdin()
    finally:
        for fd in host_ends[1:]:
            os.close(fd)
    answer = None if (run.timed_out or run.output_exceeded) else sandbox.answer()
    if answer is not None:
        status = answer[0]
        run.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        run.exit_code = os.waitstatus_to_exitcode(status) if run.signal is None else None
    sandbox.runs += 1
    run.fork_server = (sandbox.proc.pid, sandbox.runs)
    if answer is None or not answer[1] or sandbox.runs >= MAX_RUNS_PER_SANDBOX:
        sandbox.close()
    else:
        SHELF.give_back(sandbox)
    run.wall_ms = (time.monotonic() - started) * 1000
    run.uid = sandbox.slot.uid if sandbox.slot else None
    _read_report(run, raw_report, token)
    return run


def _pump(
    proc: subprocess.Popen[bytes], report_r: int, stdin_data: bytes, limits: SandboxLimits, mode: str
) -> tuple[HarnessRun, bytes]:
    """`_pump_streams` for a run in a process of its own: the exit status is the harness's."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    try:
        run, report = _pump_streams(
            proc.stdin.fileno(),
            proc.stdout.fileno(),
            proc.stderr.fileno(),
            report_r,
            stdin_data,
            limits,
            mode,
            close_stdin=proc.stdin.close,
            kill=kill,
            exited=lambda: proc.poll() is not None,
        )
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill()
            proc.wait()
    code = proc.returncode
    run.exit_code = code if code >= 0 else None
    run.signal = -code if code < 0 else None
    return run, report


def _pump_streams(
    stdin_fd: int,
    stdout_fd: int,
    stderr_fd: int,
    report_r: int,
    stdin_data: bytes,
    limits: SandboxLimits,
    mode: str,
    *,
    close_stdin: Callable[[], None],
    kill: Callable[[], None],
    exited: Callable[[], bool],
) -> tuple[HarnessRun, bytes]:
    """Feed stdin, drain stdout/stderr/report with caps, enforce the wall clock.

    `kill` ends the whole sandbox; `exited` says the harness has ended (its leftover
    processes may still hold the pipes: they are not waited for long)."""
    names = {stdout_fd: "stdout", stderr_fd: "stderr", report_r: "report"}
    kept: dict[str, bytearray] = {name: bytearray() for name in names.values()}
    totals = dict.fromkeys(names.values(), 0)
    caps = {"stdout": limits.capture_bytes, "stderr": limits.capture_bytes, "report": REPORT_CAP}
    sel = selectors.DefaultSelector()
    for fd in names:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    pending = memoryview(stdin_data)
    deadline = time.monotonic() + limits.wall
    run = HarnessRun(mode=mode, report=None)
    killed_at: float | None = None
    exited_at: float | None = None
    stdin_done = False

    def end() -> None:
        nonlocal killed_at
        if killed_at is None:
            killed_at = time.monotonic()
            kill()

    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline and killed_at is None:
                run.timed_out = True
                end()
            if killed_at is not None and now > killed_at + 2.0:
                break
            if exited_at is None and exited():
                exited_at = now
            if exited_at is not None and now > exited_at + 1.0:
                break  # leftover processes hold the pipes; the slot gets swept
            for key, _mask in sel.select(
                timeout=max(0.0, min(0.2, deadline - now)) if killed_at is None else 0.1
            ):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[: 1 << 16]) :]
                    except BlockingIOError:
                        continue
                    except OSError:
                        pending = memoryview(b"")
                    if not pending:
                        sel.unregister(fd)
                        stdin_done = True
                        close_stdin()
                    continue
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                name = names[fd]
                totals[name] += len(chunk)
                room = caps[name] - len(kept[name])
                if room > 0:
                    kept[name] += chunk[:room]
                if name == "report" and totals[name] > REPORT_CAP:
                    end()
                elif name != "report" and totals["stdout"] + totals["stderr"] > limits.max_output_bytes:
                    run.output_exceeded = True
                    end()
    finally:
        sel.close()
        if not stdin_done:
            close_stdin()
    run.stdout = kept["stdout"].decode("utf-8", errors="replace")
    run.stderr = kept["stderr"].decode("utf-8", errors="replace")
    run.stdout_bytes = totals["stdout"]
    run.stderr_bytes = totals["stderr"]
    return run, bytes(kept["report"])


def _read_report(run: HarnessRun, raw: bytes, token: bytes) -> None:
    if not raw.startswith(b"S"):
        run.problem = "the sandbox did not start the harness"
        return
    if not raw.startswith(b"SF"):
        run.problem = "the harness did not start the candidate process"
        return
    body = raw[2:]
    if body.startswith(b"X"):
        run.problem = "the harness could not fork the candidate process"
        return
    run.launched = True
    if not body:
        run.problem = "no result from harness"
        return
    if not (body.startswith(token) and body.endswith(b"\n")):
        run.problem = "harness result without a valid token"
        return
    try:
        report = json.loads(body[len(token) :])
    except ValueError:
        run.problem = "unreadable harness result"
        return
    if not isinstance(report, dict):
        run.problem = "unreadable harness result"
        return
    run.report = report
