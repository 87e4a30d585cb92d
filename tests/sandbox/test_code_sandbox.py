"""The code verifier and its bubblewrap sandbox, including a battery of hostile programs.

Every hostile program must be contained, must NOT pass, and must leave the host and
the verifier working: the battery runs as one batch with correct samples between the
hostile ones, and those must all pass. Skipped (with the reason) where bubblewrap
cannot start a sandbox; the uid/rlimit tests also need root.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from curation.data import SampleRecord
from curation.sandbox import bwrap as sandbox_bwrap
from curation.sandbox import execute as sandbox_execute
from curation.sandbox.bwrap import SandboxError, SandboxLimits, UidPool, probe_bwrap
from curation.sandbox.execute import CodeJob, run_code, run_many
from curation.sandbox.extract import extract_code, guess_entry_point
from curation.sandbox.mutants import generate_mutants
from curation.verification.base import VERIFIERS, Verdict
from curation.verification.code import CodeTestsVerifier

#: Appears in this file only: if a sandboxed program could read the file, it would leak.
PROJECT_MARKER = "assay-project-marker-7f3a91c2"
SANDBOX_PROBLEM = probe_bwrap()
needs_sandbox = pytest.mark.skipif(
    SANDBOX_PROBLEM is not None, reason=f"no bubblewrap sandbox: {SANDBOX_PROBLEM}"
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="uid pool and host-wide RLIMIT_NPROC need root")

PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
'''
SOLUTION_BODY = """    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
"""
CHECK = """

METADATA = {'author': 'jt', 'dataset': 'test'}


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False

"""
REFERENCE = {"tests": CHECK, "entry_point": "has_close_elements"}
FULL_SOLUTION = (
    "```python\nfrom typing import List\n\ndef has_close_elements(numbers, threshold):\n"
    + SOLUTION_BODY
    + "```"
)


def sample(response: str, reference: dict[str, Any] | None = None, prompt: str = PROMPT) -> SampleRecord:
    return SampleRecord(family="code", prompt=prompt, response=response, reference=reference or REFERENCE)


def fenced(code: str) -> str:
    return "```python\n" + textwrap.dedent(code).strip() + "\n```"


@pytest.fixture(scope="module")
def verifier() -> CodeTestsVerifier:
    return CodeTestsVerifier(cpu_seconds=1.0)


# ------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    ("response", "expected_how", "must_contain"),
    [
        (SOLUTION_BODY, "raw response, completing the prompt", "def has_close_elements(numbers: List[float]"),
        (FULL_SOLUTION, "fenced block, after the prompt", "def has_close_elements(numbers, threshold)"),
        (
            "Here:\n```python\nprint('scratch')\n```\nand\n```python\ndef has_close_elements(n, t):\n    return 1\n```\n"
            "```python\nprint('usage')\n```",
            "fenced block, after the prompt",
            "return 1",
        ),
        (
            "```\ndef has_close_elements(n, t):\n    return 2\n```",
            "fenced block, after the prompt",
            "return 2",
        ),
        (
            "Sure:\n```python\ndef has_close_elements(n, t):\n    return 3\n",
            "fenced block, after the prompt",
            "return 3",
        ),
    ],
)
def test_extract_code(response: str, expected_how: str, must_contain: str) -> None:
    code, how = extract_code(response, PROMPT, "has_close_elements")
    assert how == expected_how
    assert must_contain in code
    compile(code, "<extracted>", "exec")


def test_extract_without_prompt_code_uses_response_as_is() -> None:
    code, how = extract_code("def f(x):\n    return x\n", "Write f that returns its argument.", "f")
    assert (code, how) == ("def f(x):\n    return x\n", "raw response")
    assert guess_entry_point(PROMPT) == "has_close_elements"


def test_verifier_is_registered() -> None:
    assert VERIFIERS.get("code_tests") is CodeTestsVerifier
    assert (CodeTestsVerifier.name, CodeTestsVerifier.version, CodeTestsVerifier.families) == (
        "code_tests",
        "1",
        ("code",),
    )


# ---------------------------------------------------------------- basic verdicts


@needs_sandbox
@pytest.mark.parametrize("response", [SOLUTION_BODY, FULL_SOLUTION], ids=["completion", "fenced-full"])
def test_correct_humaneval_solution_passes(verifier: CodeTestsVerifier, response: str) -> None:
    verdict = verifier.verify(sample(response))
    assert verdict.passed is True, verdict
    assert verdict.score == 1.0
    assert verdict.reason == "6/6 tests passed"
    assert verdict.details["sandbox"] == "bwrap"
    assert [t["passed"] for t in verdict.details["tests"]] == [True] * 6


@needs_sandbox
@pytest.mark.parametrize(
    ("response", "prompt", "reason"),
    [
        ("    return False\n", PROMPT, "3/6 tests passed"),
        ("    return (\n", PROMPT, "syntax error"),
        (
            "```python\ndef other(numbers, threshold):\n    return True\n```",
            "Write it.",
            "entry point 'has_close_elements' not defined",
        ),
    ],
)
def test_wrong_solution_fails(verifier: CodeTestsVerifier, response: str, prompt: str, reason: str) -> None:
    verdict = verifier.verify(sample(response, prompt=prompt))
    assert verdict.passed is False
    assert verdict.reason == reason


@needs_sandbox
def test_plain_assert_lines_report_each_test(verifier: CodeTestsVerifier) -> None:
    tests = "import math\nassert inc(1) == 2\nassert inc(2) == 3\nassert inc(41) == 43\nassert math.isclose(inc(0.5), 1.5)\n"
    verdict = verifier.verify(sample("def inc(x):\n    return x + 1\n", {"tests": tests}, prompt="inc"))
    assert verdict.passed is False
    assert verdict.reason == "3/4 tests passed"
    assert verdict.score == 0.75
    outcomes = [(t["line"], t["name"], t["passed"]) for t in verdict.details["tests"]]
    assert outcomes == [
        (2, "assert inc(1) == 2", True),
        (3, "assert inc(2) == 3", True),
        (4, "assert inc(41) == 43", False),
        (5, "assert math.isclose(inc(0.5), 1.5)", True),
    ]
    assert verdict.details["tests"][2]["error"] == "AssertionError"


TEST_SHAPES: list[tuple[Any, str | None, list[str]]] = [
    # tests, entry point, expected test names (all passing)
    (
        "def check(f):\n    assert f(1) == 2\n\nif __name__ == '__main__':\n    check(inc)\n",
        None,
        ["if __name__ == '__main__':"],
    ),
    (
        "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n\ncheck(inc)\n",
        "inc",
        ["assert candidate(1) == 2", "assert candidate(2) == 3"],
    ),
    (
        "def check(candidate):\n    if candidate(1) != 2:\n        return\n    assert candidate(2) == 3\n",
        "inc",
        ["check(inc)"],
    ),
    (["assert inc(1) == 2", "assert inc(5) == 6"], None, ["assert inc(1) == 2", "assert inc(5) == 6"]),
]


@needs_sandbox
def test_test_shapes(verifier: CodeTestsVerifier) -> None:
    samples = []
    for tests, entry_point, _names in TEST_SHAPES:
        reference = {"tests": tests, **({"entry_point": entry_point} if entry_point else {})}
        samples.append(sample("def inc(x):\n    return x + 1\n", reference, prompt="Write inc."))
    for verdict, (_tests, _ep, names) in zip(verifier.verify_many(samples), TEST_SHAPES, strict=True):
        assert verdict.passed is True, verdict
        assert [t["name"] for t in verdict.details["tests"]] == names


@needs_sandbox
def test_objects_exceptions_and_in_place_mutation() -> None:
    code = textwrap.dedent(
        """
        class Solution:
            def two_sum(self, nums, target):
                seen = {}
                for i, n in enumerate(nums):
                    if target - n in seen:
                        return [seen[target - n], i]
                    seen[n] = i

        def sort_in_place(xs):
            xs.sort()

        def checked(x):
            if x < 0:
                raise ValueError("negative")
            return (x, {x: {x}})

        def big(n):
            return 7 ** n, float("nan"), -0.0
        """
    )
    tests = textwrap.dedent(
        """
        assert Solution().two_sum([2, 7, 11, 15], 9) == [0, 1]
        a = [3, 1, 2]
        sort_in_place(a)
        assert a == [1, 2, 3]
        assert checked(2) == (2, {2: {2}})
        n, nan, zero = big(9000)
        assert n == 7 ** 9000 and nan != nan and str(zero) == "-0.0"
        try:
            checked(-1)
            raise AssertionError("no exception")
        except ValueError as exc:
            assert str(exc) == "negative"
        """
    )
    result = run_code(CodeJob(code, tests), limits=SandboxLimits(cpu_seconds=2))
    assert result.passed is True, result.details["tests"]
    assert result.reason == "5/5 tests passed"


@needs_sandbox
def test_helpers_the_tests_use_come_from_the_prompt(verifier: CodeTestsVerifier) -> None:
    """The tests call the prompt's `encode`; a response that redefines it (so that any
    answer checks out) must not get its version used by the tests."""
    prompt = 'def encode(s: str) -> str:\n    return s[::-1]\n\n\ndef decode(s: str) -> str:\n    """Undo encode."""\n'
    reference = {
        "tests": "def check(candidate):\n    for w in ['abc', 'xy', '']:\n        assert candidate(encode(w)) == w\n",
        "entry_point": "decode",
    }
    cheat = "```python\ndef encode(s):\n    return s\n\ndef decode(s):\n    return s\n```"
    good, bad, cheating = verifier.verify_many(
        [
            sample("    return encode(s)\n", reference, prompt),
            sample("    return s\n", reference, prompt),
            sample(cheat, reference, prompt),
        ]
    )
    assert (good.passed, bad.passed, cheating.passed) == (True, False, False)


# ------------------------------------------------------------------ hostile battery

SECRET_ENV = "ASSAY_TEST_SECRET"
HOSTILE: dict[str, str] = {
    "fork_bomb": """
        import os
        def has_close_elements(numbers, threshold):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """,
    "fork_bomb_at_import": """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
    "memory_bomb": """
        def has_close_elements(numbers, threshold):
            hog = [bytearray(1 << 26) for _ in range(1000)]
            return len(hog) > 0
        """,
    "fork_memory_bomb": """
        import os, time
        def has_close_elements(numbers, threshold):
            for _ in range(12):
                if os.fork() == 0:
                    hog = bytearray(600 << 20)
                    time.sleep(60)
            time.sleep(60)
        """,
    "memory_bomb_single": """
        def has_close_elements(numbers, threshold):
            return len(b" " * (1 << 40)) > 0
        """,
    "endless_loop_ignoring_signals": """
        import signal
        for sig in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        signal.alarm(1)
        def has_close_elements(numbers, threshold):
            while True:
                pass
        """,
    "sleeps_forever": """
        import time
        def has_close_elements(numbers, threshold):
            time.sleep(3600)
        """,
    "disk_fill": """
        import errno, os
        def fill(directory, limit=1 << 30):
            written, n, last = 0, 0, "no error"
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                return 0, errno.errorcode[exc.errno]
            while written < limit and n < 200:
                try:
                    with open(os.path.join(directory, f"f{n}"), "wb", buffering=0) as fh:
                        for _ in range(64):
                            written += fh.write(b"x" * (1 << 20))
                except OSError as exc:
                    last = errno.errorcode[exc.errno]
                    if exc.errno != errno.EFBIG:  # file size limit: go on with the next file
                        break
                n += 1
            return written, last
        def has_close_elements(numbers, threshold):
            report = {d: fill(d) for d in ("/tmp/fill", "/dev/shm/fill", "/fill", "/usr/fill", "/dev/fill", "/var/tmp")}
            print("DISK", report, flush=True)
            return None
        """,
    "network": """
        import socket
        def has_close_elements(numbers, threshold):
            results = []
            for host in ("127.0.0.1", "10.0.0.1", "1.1.1.1"):
                try:
                    socket.create_connection((host, PORT), timeout=0.5).close()
                    results.append("connected " + host)
                except OSError as exc:
                    results.append(type(exc).__name__)
            print("NET", results, flush=True)
            return results
        """,
    "env_secret": """
        import os
        def has_close_elements(numbers, threshold):
            found = dict(os.environ)
            for path in ("/proc/self/environ", "/proc/1/environ"):
                try:
                    found[path] = open(path, "rb").read().decode(errors="replace")
                except OSError as exc:
                    found[path] = repr(exc)
            print("ENV", found, flush=True)
            return str(found)
        """,
    "read_project_files": """
        import os
        def has_close_elements(numbers, threshold):
            out = {}
            for path in (TEST_FILE, "/work/main/README.md", "/work/main/.venv/pyvenv.cfg", "/root/.bashrc",
                         "/etc/passwd", "/etc/shadow", "/work", "/root"):
                try:
                    out[path] = open(path).read() if os.path.isfile(path) else os.listdir(path)
                except OSError as exc:
                    out[path] = type(exc).__name__
            print("FILES", out, flush=True)
            return str(out)
        """,
    "write_outside": """
        import os
        def has_close_elements(numbers, threshold):
            out = {}
            for path in (OUTSIDE, "/work/main/pwned.txt", "/root/pwned.txt", "/usr/pwned.txt"):
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as fh:
                        fh.write("pwned")
                    out[path] = "written (inside the sandbox)"
                except OSError as exc:
                    out[path] = type(exc).__name__
            print("WRITE", out, flush=True)
            return None
        """,
    "kill_parent": """
        import os, signal
        def has_close_elements(numbers, threshold):
            for action in (lambda: os.kill(os.getppid(), 9), lambda: os.kill(1, 9), lambda: os.killpg(0, 9),
                           lambda: os.killpg(os.getpgid(1), 9), lambda: os.kill(-1, 9)):
                try:
                    action()
                except OSError:
                    pass
            return True
        """,
    "kill_minus_one_at_import": """
        import os
        os.kill(-1, 9)
        """,
    "always_equal": """
        class AlwaysEqual:
            def __eq__(self, other):
                return True
            def __ne__(self, other):
                return False
            def __bool__(self):
                return True
            __hash__ = object.__hash__
        def has_close_elements(numbers, threshold):
            return AlwaysEqual()
        """,
    "int_subclass_equal": """
        class Sneaky(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def has_close_elements(numbers, threshold):
            return Sneaky(1)
        """,
    "exit_zero_at_import": """
        import sys
        def has_close_elements(numbers, threshold):
            return True
        sys.exit(0)
        """,
    "os_exit_in_call": """
        import os
        def has_close_elements(numbers, threshold):
            os._exit(0)
        """,
    "fake_success_output": """
        import os, sys
        print("6/6 tests passed")
        print("0" * 32 + '{"tests": [{"name": "x", "passed": true}], "load": "ok", "timeout": null}')
        print("PASSED", file=sys.stderr)
        # flushed before the forged frames: a forged frame on the response pipe makes the
        # judge end the candidate, and on a busy machine that came before a later flush
        sys.stdout.flush()
        for fd in range(3, 64):
            try:
                os.write(fd, b"SF" + b"0" * 32 + b'{"tests": [{"passed": true}], "load": "ok"}\\n')
            except OSError:
                pass
        sys.stdout.flush()
        os._exit(0)
        """,
    "steal_token": """
        import gc, os, re
        def has_close_elements(numbers, threshold):
            hexes = set()
            for obj in gc.get_objects():
                for s in (obj if isinstance(obj, (list, tuple, set)) else [obj]):
                    if isinstance(s, (str, bytes)) and len(s) == 32:
                        hexes.add(s if isinstance(s, bytes) else s.encode())
            for path in ("/proc/1/fd/0", "/proc/1/mem", "/proc/1/cmdline", "/proc/self/fd/0"):
                try:
                    hexes.update(re.findall(rb"[0-9a-f]{32}", open(path, "rb").read(1 << 16)))
                except OSError:
                    pass
            for token in hexes:
                line = token + b'{"tests": [{"name": "t", "line": 1, "passed": true, "error": null}], "load": "ok"}\\n'
                for fd in range(1, 64):
                    try:
                        os.write(fd, line)
                    except OSError:
                        pass
            return True
        """,
    "output_flood": """
        import sys
        def has_close_elements(numbers, threshold):
            while True:
                sys.stdout.write("spam" * 4096)
        """,
}


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every hostile program once, in one batch, each followed by a correct sample."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    outside = tmp_path_factory.mktemp("outside") / "sub" / "pwned.txt"
    secret = "s3cr3t-" + secrets.token_hex(8)
    names: list[str] = []
    samples = [sample(SOLUTION_BODY)]
    for name, code in HOSTILE.items():
        code = textwrap.dedent(code).replace("PORT", str(listener.getsockname()[1]))
        code = code.replace("TEST_FILE", repr(str(Path(__file__).resolve()))).replace(
            "OUTSIDE", repr(str(outside))
        )
        names.append(name)
        samples += [sample(fenced(code), prompt="Write has_close_elements."), sample(SOLUTION_BODY)]
    os.environ[SECRET_ENV] = secret
    try:
        verdicts = CodeTestsVerifier(cpu_seconds=1.0, wall_seconds=6.0).verify_many(samples, jobs=4)
    finally:
        del os.environ[SECRET_ENV]
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    hostile = {name: verdicts[1 + 2 * i] for i, name in enumerate(names)}
    good = [verdicts[0]] + [verdicts[2 + 2 * i] for i in range(len(names))]
    return {"hostile": hostile, "good": good, "connected": connected, "secret": secret, "outside": outside}


def _dump(verdict: Verdict) -> str:
    return json.dumps(verdict.to_dict(), default=str)


@needs_sandbox
@needs_root
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_is_contained_and_fails(battery: dict[str, Any], name: str) -> None:
    verdict = battery["hostile"][name]
    assert verdict.passed is False, (name, verdict)
    assert verdict.score is not None and verdict.score < 1.0
    assert verdict.details["sandbox"] == "bwrap"
    assert len(verdict.details["stdout"]) < 2100 and len(verdict.details["stderr"]) < 2100
    text = _dump(verdict)
    assert battery["secret"] not in text
    assert PROJECT_MARKER not in text


@needs_sandbox
@needs_root
def test_correct_samples_in_the_hostile_batch_all_pass(battery: dict[str, Any]) -> None:
    assert [v.passed for v in battery["good"]] == [True] * len(battery["good"]), [
        v.reason for v in battery["good"] if not v.passed
    ]


@needs_sandbox
@needs_root
def test_hostile_specifics(battery: dict[str, Any]) -> None:
    hostile = battery["hostile"]
    # CPU time is the limit; on a machine busy enough, the wall clock backstop may come first
    timeouts = ("timeout (cpu limit 1s)", "timeout (wall clock 6s)")
    for name in ("fork_bomb", "fork_bomb_at_import", "endless_loop_ignoring_signals"):
        assert hostile[name].reason in timeouts, (name, hostile[name].reason)
    assert hostile["sleeps_forever"].reason == "timeout (wall clock 6s)"
    memory = hostile["fork_memory_bomb"].reason
    assert memory in ("memory limit (1024 MB) exceeded", *timeouts), memory
    assert hostile["memory_bomb_single"].details["tests"][0]["error"].startswith("MemoryError")
    assert hostile["always_equal"].details["tests"][0]["error"].startswith("NonPlainValue")
    assert hostile["int_subclass_equal"].details["tests"][0]["error"].startswith("NonPlainValue")
    assert hostile["exit_zero_at_import"].reason == "code failed to load: SystemExit: 0"
    assert "exited with code 0" in hostile["os_exit_in_call"].details["tests"][0]["error"]
    assert "6/6 tests passed" in hostile["fake_success_output"].details["stdout"]
    assert hostile["output_flood"].details["stdout_bytes"] > 2100
    # network: nothing reachable, and the host's loopback listener saw no connection
    assert "NET ['ConnectionRefusedError', 'OSError', 'OSError']" in hostile["network"].details["stdout"]
    assert battery["connected"] is False
    # files of the host / project are not there at all
    files = hostile["read_project_files"].details["stdout"].splitlines()[0]
    assert files.count("FileNotFoundError") == 8, files
    # writes: only the private /tmp tmpfs and /dev/shm take data, both capped
    assert not battery["outside"].exists() and not battery["outside"].parent.exists()
    assert not Path("/work/main/pwned.txt").exists() and not Path("/root/pwned.txt").exists()
    written = hostile["write_outside"].details["stdout"].splitlines()[0]
    assert (
        "'/work/main/pwned.txt': 'OSError', '/root/pwned.txt': 'OSError', '/usr/pwned.txt': 'OSError'"
        in written
    )
    disk = hostile["disk_fill"].details["stdout"].splitlines()[0]
    for path in ("/fill", "/usr/fill", "/dev/fill", "/var/tmp"):
        assert f"'{path}': (0, 'EROFS')" in disk, disk
    tmp_written = int(disk.split("'/tmp/fill': (")[1].split(",")[0])
    shm_written = int(disk.split("'/dev/shm/fill': (")[1].split(",")[0])
    assert SandboxLimits().file_size_bytes < tmp_written <= SandboxLimits().tmp_bytes, disk
    assert 0 < shm_written <= 8 << 20, disk
    assert "'/tmp/fill': (" in disk and "'ENOSPC')" in disk, disk
    # environment: only the sandbox's own variables
    env = hostile["env_secret"].details["stdout"]
    assert "'PATH': '/usr/bin:/bin'" in env and SECRET_ENV not in env


# ------------------------------------------------------------ uid / rlimit checks


@needs_sandbox
@needs_root
def test_code_runs_as_unprivileged_uid_and_nproc_bites() -> None:
    code = textwrap.dedent(
        """
        import os, subprocess, time
        def ids():
            time.sleep(1.0)  # long enough for the host to look at the sandbox's processes
            return [subprocess.check_output(["id", "-u"]).decode().strip(), os.getuid(), os.geteuid()]
        def fork_count():
            pids = []
            try:
                for _ in range(200):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(30)
                        os._exit(0)
                    pids.append(pid)
            except OSError:
                pass
            for pid in pids:
                os.kill(pid, 9)
            return len(pids)
        """
    )
    tests = "uid, real, effective = ids()\nassert uid == str(real) == str(effective) != '0'\n"
    tests += "n = fork_count()\nassert 0 < n < 32, n\n"
    seen: dict[int, list[int]] = {}
    done = threading.Event()

    def watch() -> None:
        """The host's view: real/effective/saved uids of the sandbox's python processes."""
        boot = sandbox_bwrap._BOOT.encode()  # the harness's command line inside the sandbox
        while not done.is_set():
            for name in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if boot in Path(f"/proc/{name}/cmdline").read_bytes():
                        status = Path(f"/proc/{name}/status").read_text()
                        seen[int(name)] = [int(x) for x in status.split("\nUid:")[1].split()[:3]]
                except (OSError, IndexError):
                    pass
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_code(CodeJob(code, tests), limits=SandboxLimits(cpu_seconds=2))
    finally:
        done.set()
        watcher.join()
    assert result.passed is True, result.details["tests"]
    assert len(seen) >= 2  # the judge and the candidate process at least
    assert all(61000 <= uid < 61064 for uids in seen.values() for uid in uids), seen


@needs_root
def test_uid_pool_never_hands_out_a_held_slot(tmp_path: Path) -> None:
    pool = UidPool(base=61900, size=2, lock_dir=tmp_path)
    with pool.slot() as first, pool.slot() as second:
        assert {first.uid, second.uid} == {61900, 61901}
        with pytest.raises(SandboxError), pool.slot(wait=0.2):
            pass
    with pool.slot() as again:
        assert again.uid in (61900, 61901)


@needs_sandbox
@needs_root
def test_many_quick_runs_on_a_tiny_uid_pool_never_fail_correct_code(tmp_path: Path) -> None:
    """200 runs (60 sequential on one uid, then 140, 4 at a time, on 4) with fork bombs, and
    fork bombs the host has to kill from outside (the judge hangs in a test): leftover
    processes of a uid must never make correct code fail."""
    good = CodeJob("def f(x):\n    return 2 * x\n", "assert f(2) == 4\nassert f(-1) == -2\n")
    bomb = CodeJob(textwrap.dedent(HOSTILE["fork_bomb_at_import"]), "assert f(1) == 2\n")
    killed = CodeJob(
        "import os\nfor _ in range(20):\n    if os.fork() == 0:\n        while True:\n            pass\n",
        "while True:\n    pass\n",
        limits=SandboxLimits(cpu_seconds=0.25, wall_seconds=1.5),
    )
    limits = SandboxLimits(cpu_seconds=0.25)
    one = UidPool(base=61910, size=1, lock_dir=tmp_path / "one")
    results = []
    for i in range(60):
        job = {10: bomb, 30: killed, 40: bomb, 41: killed}.get(i, good)
        results.append((job is good, run_code(job, limits=limits, pool=one)))
    assert results[30][1].reason == "timeout (wall clock 1.5s)"
    four = UidPool(base=61920, size=4, lock_dir=tmp_path / "four")
    jobs = [bomb if i in (5, 50) else good for i in range(140)]
    results += zip(
        [j is good for j in jobs], run_many(jobs, workers=4, limits=limits, pool=four), strict=True
    )
    failed = [
        (r.reason, r.details.get("stderr")) for is_good, r in results if is_good and r.passed is not True
    ]
    assert not failed
    assert all(r.passed is False for is_good, r in results if not is_good)
    for uid in (61910, 61920, 61921, 61922, 61923):
        assert sandbox_bwrap.sweep_uid(uid, timeout=5)


# ------------------------------------------------------------------ other checks


@needs_sandbox
def test_test_strength_flags_weak_tests() -> None:
    code = "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n"
    strong = "assert clamp(5, 0, 10) == 5\nassert clamp(-1, 0, 10) == 0\nassert clamp(11, 0, 10) == 10\n"
    strong += "assert clamp(0, 0, 10) == 0\nassert clamp(10, 0, 10) == 10\n"
    weak = "assert clamp(5, 0, 10) is not None\n"
    v = CodeTestsVerifier(cpu_seconds=1.0, test_strength=True, max_mutants=6)
    strong_v, weak_v = v.verify_many(
        [sample(code, {"tests": strong}, "clamp"), sample(code, {"tests": weak}, "clamp")]
    )
    assert strong_v.passed is True and weak_v.passed is True
    assert weak_v.details["weak_tests"] is True
    assert weak_v.details["mutation"]["survived"] > 0
    assert strong_v.details["mutation"]["score"] > weak_v.details["mutation"]["score"]
    assert strong_v.details["mutation"]["mutants"] == 6


def test_generate_mutants_are_distinct_and_compile() -> None:
    mutants = generate_mutants(PROMPT + SOLUTION_BODY, "has_close_elements", limit=10)
    assert 5 <= len(mutants) <= 10
    assert len({m.code for m in mutants}) == len(mutants)
    for m in mutants:
        compile(m.code, m.description, "exec")
        assert m.description.startswith("line ")


def test_without_bwrap_code_is_refused_unless_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_bwrap, "bwrap_path", lambda: None)
    monkeypatch.setattr(sandbox_execute, "bwrap_path", lambda: None)
    monkeypatch.delenv(sandbox_bwrap.UNSANDBOXED_ENV, raising=False)
    sandbox_bwrap.probe_bwrap.cache_clear()
    try:
        refusing = CodeTestsVerifier(cpu_seconds=1.0)
        (problem,) = refusing.missing_dependencies()
        assert "apt-get install bubblewrap" in problem
        verdict = refusing.verify(sample(SOLUTION_BODY))
        assert verdict.passed is None and "apt-get install bubblewrap" in verdict.reason
        if sandbox_bwrap.sandbox_python() is None:
            pytest.skip("no system python to run code with rlimits only")
        monkeypatch.setenv(sandbox_bwrap.UNSANDBOXED_ENV, "1")
        allowed = CodeTestsVerifier(cpu_seconds=1.0)
        assert allowed.missing_dependencies() == []
        good, bad = allowed.verify_many([sample(SOLUTION_BODY), sample("    return False\n")])
        assert (good.passed, bad.passed) == (True, False), (good.reason, bad.reason)
        assert good.details["sandbox"] == "rlimits-only"
        assert "WITHOUT a sandbox" in good.details["warning"]
    finally:
        sandbox_bwrap.probe_bwrap.cache_clear()


@needs_sandbox
def test_concurrent_verifiers_in_threads() -> None:
    verdicts: list[Verdict] = []
    v = CodeTestsVerifier(cpu_seconds=2.0)

    def work() -> None:
        verdicts.extend(v.verify_many([sample(SOLUTION_BODY)] * 3, jobs=2))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [x.passed for x in verdicts] == [True] * 6
