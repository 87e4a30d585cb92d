"""The in-sandbox test harness: trusted code that judges one candidate against its tests.

This file is never imported by the host for execution. The host has the sandbox's
interpreter compile it once (`bwrap._harness_blob`) and runs it inside the sandbox as::

    python3 -s -S -B -P -X utf8 -c <load marshalled code from argv> REPORT_FD KILL_SCOPE CODE

(or with this source after ``-c`` if precompiling failed).

It only uses the standard library of the sandbox's interpreter, and imports a module
only on the path that needs it (inside the function): this script starts once per
candidate, so every import costs every run.

Why two processes
-----------------
Model code is hostile, and code running in a process can rewrite anything in that
process (builtins, this module, `json`, the report fd). So the *judge* (this process;
under bwrap forked per run by the sandbox's pid 1, the fork server at the end of
this file) never runs candidate code:

1. it writes a start marker ("S") on REPORT_FD, makes itself non-dumpable (so a process of
   the same uid can neither read its memory nor reopen its fds through /proc), reads
   the candidate's code from stdin and forks the *candidate process* (marker "F" just
   before: from there on a missing report is the candidate's doing, before it the
   sandbox's; "X" after it means the fork itself failed);
2. only then does it read the tests and the per-run report token from stdin, so the
   candidate process never had either in its memory;
3. it runs the tests itself. Names the tests use from the candidate's module are
   proxies: a call is sent to the candidate process, which answers with plain data
   only (None/bool/int/float/str and list/tuple/dict/set/frozenset of those). The
   judge decodes the answer into objects it builds itself, so comparisons never run
   candidate code and an always-equal object cannot exist on the judge's side. A
   non-plain result comes back as an opaque handle whose comparisons raise;
4. it writes ``token + json`` on REPORT_FD, which the candidate process closed before
   loading the code. Nothing the candidate prints counts.

The judge also enforces the CPU budget for the whole sandbox (sum over its processes,
so a fork bomb of busy loops is stopped too) and kills everything else on overrun.
"""

import _ast
import _signal as signal  # `signal` would import enum: every import here costs every run
import os
import select
import sys
import time

MAX_FRAME = 32 << 20
MAX_DEPTH = 200
MAX_NAMES = 2000
MAX_DATA_GLOBAL = 1 << 20
ERR_LEN = 500
TOKEN_LEN = 32
#: Modules the judge mirrors into the tests' namespace when the candidate's module
#: imported them (HumanEval tests sometimes rely on the prompt's imports).
MIRRORED_MODULES = frozenset(
    "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools "
    "json math operator random re statistics string sys time typing unicodedata".split()
)
_DEFAULT_DIGITS = sys.int_info.default_max_str_digits
_FLOAT_TAGS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_SIGNAL_NAMES = {
    getattr(signal, n): n for n in dir(signal) if n.startswith("SIG") and not n.startswith("SIG_")
}


class ProtocolError(Exception):
    """The candidate process sent something that is not a valid message."""


class CandidateDied(Exception):
    """The candidate process is gone (exit, signal, cpu limit): no more calls possible."""


class CandidateError(Exception):
    """The candidate raised an exception that has no builtin equivalent here."""


class NonPlainValue(TypeError):
    """A value is not plain data (or a proxy to a non-plain value was compared/used)."""


# ----------------------------------------------------------------------------- wire


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("unexpected end of input")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# JSON straight on the C accelerator: the `json` package imports `re` (and enum),
# which costs more per run than everything else the judge imports together.
try:
    from _json import encode_basestring_ascii as _escape
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # another interpreter: fall back to the package
    _make_scanner = None


class _ScanContext:
    strict = True
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    def __init__(self, object_hook):
        self.object_hook = object_hook

    @staticmethod
    def parse_constant(name):
        raise ProtocolError(f"bare {name} in message")


def _no_default(value):
    raise TypeError(f"not JSON: {type(value).__name__}")


def json_dumps(obj):
    """Compact, ASCII-only JSON; NaN and infinities are errors."""
    if _make_scanner is None:
        import json  # sandbox: only on the path that needs it (each import costs every run)

        return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    encoder = _make_encoder(None, _no_default, _escape, None, ":", ",", False, False, False)
    return "".join(encoder(obj, 0))


def json_loads(data, object_hook=None):
    """Parse one JSON document (bytes or str); objects go through `object_hook`."""
    text = data.decode("utf-8") if type(data) is bytes else data
    if _make_scanner is None:
        import json  # sandbox: only on the path that needs it (each import costs every run)

        return json.loads(text, object_hook=object_hook, parse_constant=_ScanContext.parse_constant)
    try:
        value, end = _make_scanner(_ScanContext(object_hook))(text, 0)
    except StopIteration:
        raise ValueError("invalid JSON") from None
    if text[end:].strip():
        raise ValueError("extra data after JSON")
    return value


def _read_msg(fd):
    """A message from the (trusted) host on stdin: 10 ascii digits, then JSON."""
    size = int(_read_exact(fd, 10))
    return json_loads(_read_exact(fd, size))


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _frame(obj):
    data = json_dumps(obj).encode()
    if len(data) > MAX_FRAME:
        raise ValueError("message too large")
    return b"%010d" % len(data) + data


def encode(value, ext=None, depth=0):
    """Plain data -> JSON-able tagged form. Exact type checks: subclasses are not plain.

    Lists are JSON arrays; every JSON object is a one-key tag: ``{"t": [...]}`` tuple,
    ``{"s": ...}`` set, ``{"fs": ...}`` frozenset, ``{"d": [[k, v], ...]}`` dict,
    ``{"f": "nan"}`` non-finite float; ``ext`` may encode other types (handles)."""
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is int:
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {"f": repr(value)}
        return value
    if depth > MAX_DEPTH:
        raise NonPlainValue("value nested too deeply")
    depth += 1
    if kind is list:
        return [encode(v, ext, depth) for v in value]
    if kind is tuple:
        return {"t": [encode(v, ext, depth) for v in value]}
    if kind is set:
        return {"s": [encode(v, ext, depth) for v in value]}
    if kind is frozenset:
        return {"fs": [encode(v, ext, depth) for v in value]}
    if kind is dict:
        return {"d": [[encode(k, ext, depth), encode(v, ext, depth)] for k, v in value.items()]}
    if ext is not None:
        return ext(value)
    raise NonPlainValue(f"non-plain value of type {kind.__name__}")


def _tag_hook(resolve_handle):
    containers = {"t": tuple, "s": set, "fs": frozenset}

    def hook(obj):
        if len(obj) != 1:
            raise ProtocolError("malformed value")
        ((tag, val),) = obj.items()
        if tag in containers and type(val) is list:
            return containers[tag](val)
        if tag == "d" and type(val) is list:
            out = {}
            for pair in val:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("malformed dict")
                out[pair[0]] = pair[1]
            return out
        if tag == "f" and val in _FLOAT_TAGS:
            return _FLOAT_TAGS[val]
        if resolve_handle is not None and tag in ("h", "n"):
            return resolve_handle(tag, val)
        raise ProtocolError(f"unknown tag {tag!r}")

    return hook


def decode(data, resolve_handle=None):
    """JSON bytes -> plain objects built here (the inverse of `encode`)."""
    try:
        return json_loads(data, _tag_hook(resolve_handle))
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the bytes provoke, they are not a message
        raise ProtocolError(f"undecodable message: {type(exc).__name__}") from None


def _safe_text(exc):
    try:
        text = str(exc)
    except BaseException:  # noqa: B036 - hostile __str__ may raise anything
        text = "<unprintable>"
    return text if type(text) is str else "<unprintable>"


def _type_name(value):
    name = type(value).__name__
    return name if type(name) is str else "?"


# ---------------------------------------------------------------- candidate process


class _Server:
    """Runs inside the candidate process; untrusted once the candidate is loaded."""

    def __init__(self, module, req_fd, resp_fd):
        self.module = module
        self.req_fd = req_fd
        self.resp_fd = resp_fd
        self.handles = {}

    def send(self, obj):
        _write_all(self.resp_fd, _frame(obj))

    def resolve(self, tag, val):
        if tag == "h":
            return self.handles[val]
        return self.module.__dict__[val]

    def wrap(self, value, extra=None, allow_handle=True):
        try:
            reply = ["ok", encode(value)]
        except (NonPlainValue, RecursionError):
            if not allow_handle:
                raise NonPlainValue(f"returned a non-plain value of type {_type_name(value)}") from None
            handle = len(self.handles) + 1
            self.handles[handle] = value
            reply = ["h", handle, f"{_type_name(value)} object", bool(callable(value))]
        if extra:
            reply.append(extra)
        return reply

    def handle(self, msg):
        op, ref = msg[0], msg[1]
        target = self.resolve(ref[0], ref[1])
        if op == "getattr":
            return self.wrap(getattr(target, msg[2]))
        if op != "call":
            raise ProtocolError("unknown op")
        args, kwargs = msg[2], msg[3]
        result = target(*args, **kwargs)
        # Only constructing an object may give back an object (a handle to call its
        # methods); a function or method must return plain data.
        return self.wrap(result, self._mutations(args, kwargs, msg[4]), allow_handle=isinstance(target, type))

    @staticmethod
    def _mutations(args, kwargs, sent):
        """Arguments the call mutated in place, so the judge can mirror the change."""
        changed = []
        for key, value in list(enumerate(args)) + list(kwargs.items()):
            if type(value) in (list, dict, set):
                try:
                    now = encode(value)
                except (NonPlainValue, RecursionError):
                    continue
                before = sent[0][key] if type(key) is int else sent[1].get(key)
                if now != before:
                    changed.append([key, now])
        return changed

    def serve(self):
        while True:
            try:
                size = int(_read_exact(self.req_fd, 10))
                raw = _read_exact(self.req_fd, size)
            except (EOFError, OSError, ValueError):
                return
            try:
                # big ints cross the pipe whatever their size; the candidate's own code
                # runs with Python's usual int/str conversion limit
                sys.set_int_max_str_digits(0)
                msg = decode(raw, self.resolve)
                if msg[0] == "call":
                    sent = json_loads(raw)
                    msg.append((sent[2], dict(sent[3]["d"])))
                sys.set_int_max_str_digits(_DEFAULT_DIGITS)
                reply = self.handle(msg)
                sys.set_int_max_str_digits(0)
                frame = _frame(reply)
            except BaseException as exc:  # noqa: B036 - report everything the candidate raises
                try:
                    frame = _frame(["exc", _type_name(exc), _safe_text(exc)[:ERR_LEN]])
                except BaseException:  # noqa: B036
                    frame = _frame(["exc", "Exception", "unreportable exception"])
            _write_all(self.resp_fd, frame)


def _describe_names(module):
    """[[name, kind, value-or-description], ...] for the module's public names."""
    import types  # sandbox: only on the path that needs it (each import costs every run)

    names = []
    for key, value in list(module.__dict__.items())[:MAX_NAMES]:
        if type(key) is not str or key.startswith("__"):
            continue
        if type(value) is types.ModuleType:
            modname = value.__name__
            names.append([key, "module", modname if type(modname) is str else ""])
            continue
        try:
            data = encode(value)
            if len(json_dumps(data)) <= MAX_DATA_GLOBAL:
                names.append([key, "data", data])
                continue
        except (NonPlainValue, RecursionError, ValueError):
            pass
        names.append([key, "callable" if callable(value) else "object", f"{_type_name(value)} {key!r}"])
    return names


def _candidate_main(cfg, req_fd, resp_fd, report_fd, judge_ends):
    """The forked candidate process: drop every trusted channel, load the code, serve."""
    for fd in judge_ends:
        os.close(fd)
    os.close(report_fd)
    os.close(0)
    os.open("/dev/null", os.O_RDONLY)  # becomes fd 0: input() sees EOF, not EBADF
    import resource  # sandbox: only on the path that needs it (each import costs every run)

    cpu = int(cfg["cpu_seconds"]) + 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit_hard = cpu + 1 if hard == resource.RLIM_INFINITY else min(cpu + 1, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (min(cpu, limit_hard), limit_hard))
    if cfg["kill_scope"] == "group":
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import _sitebuiltins  # sandbox: only on the path that needs it (each import costs every run)
    import builtins  # sandbox: only on the path that needs it (each import costs every run)
    import types  # sandbox: only on the path that needs it (each import costs every run)

    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    sys.set_int_max_str_digits(_DEFAULT_DIGITS)
    module = types.ModuleType("candidate")
    module.__dict__["__builtins__"] = builtins
    sys.modules["candidate"] = module
    server = _Server(module, req_fd, resp_fd)
    try:
        code = compile(cfg["code"], "<candidate>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        server.send(["load", "syntax_error", f"{type(exc).__name__}: {_safe_text(exc)}"[:ERR_LEN]])
        return
    try:
        exec(code, module.__dict__)  # noqa: S102 - model code, inside the sandbox's candidate process
    except BaseException as exc:  # noqa: B036 - SystemExit at import is a load failure too
        server.send(["load", "error", f"{_type_name(exc)}: {_safe_text(exc)}"[:ERR_LEN]])
        return
    sys.set_int_max_str_digits(0)
    server.send(["load", "ok", _describe_names(module)])
    server.serve()


# -------------------------------------------------------------------------- judge


class Remote:
    """The judge's stand-in for a candidate object: callable, never comparable."""

    __slots__ = ("_ref", "_what")

    def __init__(self, ref, what):
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_what", what)

    def __call__(self, *args, **kwargs):
        return CHANNEL.call(self._ref, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return CHANNEL.getattr(self._ref, name)

    def __setattr__(self, name, value):
        raise NonPlainValue(f"cannot set attributes on {self._what} from the candidate")

    def __repr__(self):
        return f"<{self._what} from the candidate>"

    __str__ = __repr__

    def _refuse(self, *args):
        raise NonPlainValue(f"{self._what} from the candidate is not plain data")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = _refuse
    __int__ = __float__ = __index__ = __round__ = __abs__ = __neg__ = _refuse


class Channel:
    """The judge's end of the pipe pair to the candidate process, with the CPU watchdog."""

    def __init__(self, pid, req_fd, resp_fd, cfg, pid1):
        self.pid = pid
        self.req_fd = req_fd
        self.resp_fd = resp_fd
        self.cpu_limit = float(cfg["cpu_seconds"])
        self.memory_limit = int(cfg.get("memory_bytes") or 1 << 62)
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.deadline = time.monotonic() + max(1.0, float(cfg["wall_seconds"]) - 1.5)
        self.kill_all = pid1 or cfg["kill_scope"] == "all"
        #: The judge sees every process of the sandbox: as its pid 1, or as the fork
        #: server's child and subreaper (then pid 1 is the fork server, not counted).
        self.whole_sandbox = pid1 or FORKED_BY_SERVER
        self.buf = bytearray()
        self.dead = None
        self.timeout = None
        self.status = None
        self.clk = os.sysconf("SC_CLK_TCK")
        self.next_check = time.monotonic() + 0.1

    # --- budget ---------------------------------------------------------------

    def _proc_usage(self, pid):
        """(clock ticks incl. reaped children, resident pages) of one process."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            # stat field 24 (rss) is in pages, like statm's second field
            return sum(int(f) for f in fields[11:15]), int(fields[21])
        except (OSError, IndexError, ValueError):
            return 0, 0

    def usage(self):
        """(CPU seconds, resident bytes) of the sandbox apart from the judge (and the
        fork server). CPU counts live processes and reaped ones."""
        if self.whole_sandbox:
            skip = (os.getpid(), 1)
            pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in skip]
        else:
            pids = [self.pid] if self.status is None else []
        ticks = rss = 0
        for pid in pids:
            t, r = self._proc_usage(pid)
            ticks += t
            rss += r
        times = os.times()
        return ticks / self.clk + times.children_user + times.children_system, rss * self.page

    def cpu_used(self):
        return self.usage()[0]

    def reap(self):
        """Collect zombies (as pid 1 or subreaper, orphans are ours), keeping the candidate's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def kill(self, why):
        if self.timeout is None:
            self.timeout = why
        if self.kill_all:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif self.status is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._wait_child(block=True)
        self.dead = self.dead or self._describe_death()

    def check_budget(self):
        """Total CPU and memory of the sandbox: per-process rlimits alone would let a
        fork bomb use (processes x limit) of both."""
        self.reap()
        cpu, rss = self.usage()
        if cpu > self.cpu_limit:
            self.kill("cpu")
        elif rss > self.memory_limit:
            self.kill("memory")
        elif time.monotonic() > self.deadline:
            self.kill("wall")

    # --- child status ---------------------------------------------------------

    def _wait_child(self, block):
        if self.status is not None:
            return
        end = time.monotonic() + (5.0 if block else 0.5)
        pause = 0.0005
        while self.status is None and time.monotonic() < end:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.status = 0
                return
            if pid:
                self.status = status
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def _describe_death(self):
        if self.timeout == "cpu":
            return f"timeout (cpu limit {self.cpu_limit:g}s)"
        if self.timeout == "wall":
            return "timeout (wall clock)"
        if self.timeout == "memory":
            return f"memory limit ({self.memory_limit >> 20} MB) exceeded"
        status = self.status
        if status is None:
            return "candidate process stopped answering"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU:
                self.timeout = "cpu"
                return f"timeout (cpu limit {self.cpu_limit:g}s)"
            return f"candidate process killed by {_SIGNAL_NAMES.get(sig, sig)}"
        return f"candidate process exited with code {os.waitstatus_to_exitcode(status)}"

    def _died(self):
        self._wait_child(block=False)
        if self.status is None:
            self.kill("gone")
            self.timeout = None if self.timeout == "gone" else self.timeout
        self.dead = self.dead or self._describe_death()
        raise CandidateDied(self.dead)

    # --- messages -------------------------------------------------------------

    def recv(self):
        if self.dead:
            raise CandidateDied(self.dead)
        poll = 0.02
        need = 10
        while True:
            while len(self.buf) < need:
                ready, _, _ = select.select([self.resp_fd], [], [], poll)
                now = time.monotonic()
                if not ready or now >= self.next_check:
                    # also between quick answers: background processes may be burning CPU
                    poll = min(poll * 2, 0.1)
                    self.next_check = now + 0.1
                    self.check_budget()
                    if self.dead:
                        raise CandidateDied(self.dead)
                    if not ready:
                        continue
                chunk = os.read(self.resp_fd, 1 << 20)
                if not chunk:
                    self._died()
                self.buf += chunk
            if need == 10:
                head = bytes(self.buf[:10])
                if not head.isdigit() or int(head) > MAX_FRAME:
                    self.kill("protocol")
                    self.dead = "candidate process broke the protocol"
                    raise CandidateDied(self.dead)
                need = 10 + int(head)
                continue
            data = bytes(self.buf[10:need])
            del self.buf[:need]
            return data

    def send(self, obj):
        if self.dead:
            raise CandidateDied(self.dead)
        try:
            _write_all(self.req_fd, _frame(obj))
        except (BrokenPipeError, OSError):
            self._died()

    def hello(self):
        try:
            msg = decode(self.recv())
        except ProtocolError as exc:
            return ["load", "error", f"bad hello from candidate process: {exc}"]
        except CandidateDied as exc:
            if self.timeout:
                return ["load", "timeout", str(exc)]
            return ["load", "died", f"candidate exited during import ({exc})"]
        if type(msg) is not list or len(msg) != 3 or msg[0] != "load":
            return ["load", "error", "bad hello from candidate process"]
        return msg

    @staticmethod
    def _ext(value):
        if type(value) is Remote:
            return {value._ref[0]: value._ref[1]}
        raise NonPlainValue(f"cannot pass a {type(value).__name__} to the candidate")

    def call(self, ref, args, kwargs):
        enc_args = [encode(a, self._ext) for a in args]
        enc_kwargs = {str(k): encode(v, self._ext) for k, v in kwargs.items()}
        self.send(["call", ref, enc_args, {"d": [[k, v] for k, v in enc_kwargs.items()]}])
        return self._result(args, kwargs)

    def getattr(self, ref, name):
        self.send(["getattr", ref, name])
        return self._result((), {})

    def _result(self, args, kwargs):
        try:
            reply = decode(self.recv())
        except ProtocolError as exc:
            raise CandidateError(f"malformed reply from candidate process: {exc}") from None
        size = len(reply) if type(reply) is list else 0
        kind = reply[0] if size else None
        if kind == "ok" and size in (2, 3):
            if size == 3:
                _apply_mutations(reply[2], args, kwargs)
            return reply[1]
        if kind == "h" and size == 4 and type(reply[1]) is int and type(reply[2]) is str:
            return Remote(["h", reply[1]], reply[2][:80])
        if kind == "exc" and size == 3 and type(reply[1]) is str and type(reply[2]) is str:
            raise _exception(reply[1], reply[2])
        raise CandidateError("malformed reply from candidate process")

    def close(self):
        """End the candidate process: it exits on EOF, and its end of the reply pipe
        closing tells us so without polling."""
        try:
            os.close(self.req_fd)
        except OSError:
            pass
        end = time.monotonic() + 0.5
        while self.status is None and not self.dead:
            ready, _, _ = select.select([self.resp_fd], [], [], max(0.0, end - time.monotonic()))
            if not ready or not os.read(self.resp_fd, 1 << 16):
                break
        self._wait_child(block=False)
        if self.status is None:
            self.kill("closing")
            if self.timeout == "closing":
                self.timeout = None


def _apply_mutations(changes, args, kwargs):
    if type(changes) is not list:
        return
    for change in changes:
        if type(change) is not list or len(change) != 2:
            continue
        key, new = change
        if type(key) is int and 0 <= key < len(args):
            old = args[key]
        elif type(key) is str and key in kwargs:
            old = kwargs[key]
        else:
            continue
        if type(old) is list and type(new) is list:
            old[:] = new
        elif type(old) in (dict, set) and type(new) is type(old):
            old.clear()
            old.update(new)


def _exception(name, message):
    import builtins  # sandbox: only on the path that needs it (each import costs every run)

    message = message[:ERR_LEN]
    if name == "NonPlainValue":
        return NonPlainValue(message)
    cls = getattr(builtins, name, None) if name.isidentifier() else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError wants five arguments
            pass
    return CandidateError(f"{name}: {message}" if message else name)


CHANNEL = None


_CALL_STATEMENTS = (_ast.Expr, _ast.If, _ast.For, _ast.While, _ast.With, _ast.Try)


def _children(node):
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, _ast.AST):
            yield value
        elif type(value) is list:
            yield from (item for item in value if isinstance(item, _ast.AST))


def _walk(node):
    todo = [node]
    while todo:
        node = todo.pop()
        todo.extend(_children(node))
        yield node


def _source_line(lines, node):
    """The first line of a statement's source, as its test name."""
    try:
        text = lines[node.lineno - 1].encode()[node.col_offset :].decode(errors="replace").strip()
    except (IndexError, AttributeError):
        text = ""
    return (text or type(node).__name__)[:120]


def _is_test_statement(node):
    """A statement counts as a test if it asserts something non-constant (defining a
    function or class that asserts is not testing yet)."""
    if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef)):
        return False
    return any(
        isinstance(sub, _ast.Assert) and not isinstance(sub.test, _ast.Constant) for sub in _walk(node)
    )


def _splittable(func):
    """Can check()'s body run statement by statement in one flat namespace?"""
    args = func.args
    if len(args.args) != 1 or args.posonlyargs or args.vararg or args.kwarg or args.kwonlyargs:
        return False
    todo = list(func.body)
    while todo:
        node = todo.pop()
        if isinstance(
            node, (_ast.Return, _ast.Yield, _ast.YieldFrom, _ast.Global, _ast.Nonlocal, _ast.Await)
        ):
            return False
        if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef, _ast.Lambda)):
            continue
        todo.extend(_children(node))
    return True


def _plan(src, entry_point):
    """Tests source -> units, each (kind, name, line, code); kinds: setup, test,
    bind (the check parameter), check (call check() as one test).

    HumanEval style (a top-level ``def check(candidate)`` and an entry point): the
    module is set up without its own ``check(...)`` calls, then each statement of
    check's body that asserts is one test, if the body can be run flat; else
    ``check(candidate)`` is one test. Otherwise every top-level statement that
    asserts is one test (bare calls too if nothing asserts at top level, e.g. a lone
    ``check(f)``, also under ``if __name__ == "__main__"``) and the rest is setup,
    run in order (as ``__main__``). Setup that fails is reported
    as a failed test as well.

    Uses `_ast` and compile(): the `ast` module would import enum on every run."""
    tree = compile(src, "<tests>", "exec", _ast.PyCF_ONLY_AST)
    lines = src.splitlines()
    checks = [n for n in tree.body if isinstance(n, _ast.FunctionDef) and n.name == "check"]
    units = []

    def compiled(nodes):
        return compile(_ast.Module(body=nodes, type_ignores=[]), "<tests>", "exec")

    def unit(kind, node):
        units.append((kind, _source_line(lines, node), node.lineno, compiled([node])))

    if checks and entry_point:
        check = checks[-1]
        for node in tree.body:
            calls_check = not isinstance(node, _ast.FunctionDef) and any(
                isinstance(sub, _ast.Call) and isinstance(sub.func, _ast.Name) and sub.func.id == "check"
                for sub in _walk(node)
            )
            if not calls_check:  # e.g. `check(f)` or `if __name__ == "__main__": check(f)`
                unit("setup", node)
        if _splittable(check):
            units.append(("bind", check.args.args[0].arg, check.lineno, None))
            for node in check.body:
                unit("test" if _is_test_statement(node) else "setup", node)
        else:
            units.append(("check", f"check({entry_point})", check.lineno, None))
        return units
    any_assert = any(_is_test_statement(node) for node in tree.body)
    for node in tree.body:
        calls = isinstance(node, _CALL_STATEMENTS) and any(isinstance(sub, _ast.Call) for sub in _walk(node))
        unit("test" if _is_test_statement(node) or (calls and not any_assert) else "setup", node)
    return units


def _error_text(exc):
    if isinstance(exc, CandidateDied):
        return str(exc)
    text = _safe_text(exc)
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:ERR_LEN]


def _namespace(names):
    import builtins  # sandbox: only on the path that needs it (each import costs every run)
    import importlib  # sandbox: only on the path that needs it (each import costs every run)

    ns = {"__name__": "__main__", "__builtins__": builtins}
    for entry in names:
        if type(entry) is not list or len(entry) != 3 or type(entry[0]) is not str:
            continue
        key, kind, val = entry
        if not key.isidentifier():
            continue
        if kind == "module" and type(val) is str and val in MIRRORED_MODULES:
            try:
                ns[key] = importlib.import_module(val)
            except ImportError:
                pass
        elif kind == "data":
            ns[key] = val
        elif kind in ("callable", "object") and type(val) is str:
            ns[key] = Remote(["n", key], val[:80])
    return ns


def _is_stub(func):
    """A function the prompt leaves for the candidate: only a docstring / pass / ..."""
    for node in func.body:
        if isinstance(node, _ast.Pass):
            continue
        if isinstance(node, _ast.Expr) and isinstance(node.value, _ast.Constant):
            continue
        return False
    return True


def _run_prelude(src, ns):
    """Run the prompt's own code (trusted, like the tests) in the tests' namespace, so
    helpers the tests rely on (HumanEval's ``poly``, ``encode_cyclic``, ...) are the
    prompt's, not versions the candidate redefined; the prompt's stubs do not replace
    the candidate's functions."""
    try:
        tree = compile(src, "<prompt>", "exec", _ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    functions = (_ast.FunctionDef, _ast.AsyncFunctionDef)
    stubs = [n.name for n in tree.body if isinstance(n, functions) and _is_stub(n)]
    saved = {name: ns[name] for name in stubs if name in ns}
    try:
        exec(compile(tree, "<prompt>", "exec"), ns)  # noqa: S102 - the dataset's prompt, inside the judge
    except BaseException:  # noqa: B036 - a prompt that does not run still leaves the candidate's names
        pass
    ns.update(saved)


def _judge(channel, spec):
    report = {
        "tests": [],
        "load": None,
        "load_error": None,
        "tests_error": None,
        "entry_point_missing": False,
    }
    entry_point = spec.get("entry_point") or None
    try:
        units = _plan(spec["tests"], entry_point)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        report["tests_error"] = f"{type(exc).__name__}: {exc}"[:ERR_LEN]
        units = []
    hello = channel.hello()
    report["load"] = hello[1] if type(hello[1]) is str else "error"
    if hello[1] != "ok":
        report["load_error"] = str(hello[2])[:ERR_LEN]
        units = [u for u in units if u[0] in ("test", "check")]
        report["tests"] = [
            {"name": name, "line": line, "passed": False, "error": report["load_error"]}
            for _k, name, line, _c in units
        ]
        return report
    names = hello[2] if type(hello[2]) is list else []
    kinds = {e[0]: e[1] for e in names if type(e) is list and len(e) == 3 and type(e[0]) is str}
    if entry_point and kinds.get(entry_point) != "callable":
        report["entry_point_missing"] = True
    ns = _namespace(names)
    if spec.get("prelude"):
        _run_prelude(spec["prelude"], ns)
    for kind, name, line, code in units:
        if kind == "bind":
            ns[name] = Remote(["n", entry_point], f"function {entry_point!r}")
            continue
        error = None
        try:
            if kind == "check":
                ns["check"](Remote(["n", entry_point], f"function {entry_point!r}"))
            else:
                exec(code, ns)  # noqa: S102 - the dataset's trusted tests, inside the sandbox's judge
        except BaseException as exc:  # noqa: B036 - a test can fail any way at all
            error = _error_text(exc)
        if kind != "setup" or error is not None:
            report["tests"].append({"name": name, "line": line, "passed": error is None, "error": error})
    return report


def _preload(code):
    """Import, before the fork, the mirrored stdlib modules the candidate's code imports
    (a plain text scan: the judge does not parse untrusted code). The candidate
    process then gets them for free, and the tests and prompt usually need them too."""
    import importlib  # sandbox: only on the path that needs it (each import costs every run)

    wanted = set()
    for line in code.splitlines():
        words = line.strip().split()
        if len(words) >= 2 and words[0] in ("import", "from"):
            wanted.add(words[1].split(".")[0].rstrip(","))
    for name in sorted(wanted & MIRRORED_MODULES):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _prctl(option, value):
    import ctypes  # sandbox: only on the path that needs it (each import costs every run)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _make_undumpable():
    """PR_SET_DUMPABLE=0: other processes of our uid cannot ptrace us, read our
    memory or open /proc/<judge>/fd/*. Children forked later inherit it too."""
    _prctl(4, 0)  # PR_SET_DUMPABLE


def main():
    global CHANNEL
    if sys.argv[2] in (ZYGOTE, ZYGOTE_UNSWEPT):
        serve_forks(int(sys.argv[1]), sweep=sys.argv[2] == ZYGOTE)
        return
    report_fd = int(sys.argv[1])
    kill_scope = sys.argv[2]
    os.write(report_fd, b"S")
    pid1 = os.getpid() == 1
    if pid1:
        # Signals from inside a pid namespace reach its init only if it has a handler:
        # with none, `kill -1`, os.kill(1, 9) or SIGINT from the candidate do nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _make_undumpable()
    sys.set_int_max_str_digits(0)
    cfg = _read_msg(0)
    cfg["kill_scope"] = kill_scope
    if cfg.get("nproc") or cfg.get("cpu_backstop"):
        import resource  # sandbox: only on the path that needs it (each import costs every run)

        if cfg.get("nproc"):
            resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
        if cfg.get("cpu_backstop"):
            # a long-lived sandbox starts with a generous CPU rlimit: each run gets its own
            resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_backstop"], cfg["cpu_backstop"]))
    _preload(cfg["code"])
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(report_fd, b"F")
    try:
        pid = os.fork()
    except OSError:
        os.write(report_fd, b"X")  # the sandbox's trouble, not the candidate's: the host retries
        raise
    if pid == 0:
        _child_exits_after(_candidate_main, cfg, req_r, resp_w, report_fd, (req_w, resp_r))
    os.close(req_r)
    os.close(resp_w)
    spec = _read_msg(0)
    token = _read_exact(0, TOKEN_LEN)
    os.close(0)
    CHANNEL = Channel(pid, req_w, resp_r, cfg, pid1)
    try:
        report = _judge(CHANNEL, spec)
    except BaseException as exc:  # noqa: B036 - report the judge's own failure, do not hide it
        report = {"harness_error": f"{type(exc).__name__}: {exc}"[:ERR_LEN], "tests": []}
    CHANNEL.close()
    report["timeout"] = CHANNEL.timeout if CHANNEL.timeout in ("cpu", "wall", "memory") else None
    report["candidate_status"] = CHANNEL.dead or CHANNEL._describe_death()
    report["cpu_seconds"] = round(CHANNEL.cpu_used(), 3)
    _write_all(report_fd, token + json_dumps(report).encode() + b"\n")
    os.close(report_fd)


# ---------------------------------------------------------------- fork server

#: KILL_SCOPE values that make this process a long-lived sandbox's fork server (pid 1);
#: the unswept one exists only to show, in a test, what the sweep prevents.
ZYGOTE = "fork-server"
ZYGOTE_UNSWEPT = "fork-server-unswept"
#: True in a judge forked by the fork server (set in the child just after the fork).
FORKED_BY_SERVER = False
JUDGE_REPORT_FD = 3
#: Modules every run needs (judge or candidate), imported once by the fork server.
#: Not `random`: forked children would all share one generator state.
_SERVER_PRELOAD = ("ctypes", "resource", "types", "builtins", "importlib", "_sitebuiltins")
_SWEPT_DIRS = ("/tmp", "/dev/shm")
_SYSV_IPC = ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")


def serve_forks(control_fd, sweep=True):
    """A long-lived sandbox's pid 1: for each request on the control socket (one byte
    and the run's stdin, stdout, stderr and report pipes as SCM_RIGHTS), fork a judge
    that runs `main` exactly as in a fresh sandbox, wait for it, then sweep the sandbox
    (kill and reap every other process, empty /tmp and /dev/shm, check SysV IPC) and
    answer ``[wait status, clean]``. A sandbox that is not clean after the sweep says
    so and exits: the host then discards it.

    This process never reads a run's code, tests or token and never runs untrusted
    code: each judge starts from its clean memory, each candidate from its judge's."""
    import gc  # sandbox: the fork server pays each import once, for every run after it
    import importlib  # sandbox: the fork server pays each import once, for every run after it
    import socket  # sandbox: the fork server pays each import once, for every run after it

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Python's own handler would let SIGINT in
    _make_undumpable()
    for name in _SERVER_PRELOAD + tuple(sorted(MIRRORED_MODULES - {"random"})):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    modes = {path: os.stat(path).st_mode & 0o7777 for path in _SWEPT_DIRS}
    control = socket.socket(fileno=control_fd)
    # Every object so far goes to the permanent generation: a judge's or candidate's
    # collections then never walk (and so never copy-on-write) the pages they share
    # with this process: 20-25 % less CPU per sample, measured (BENCHMARKS.md).
    gc.freeze()
    while True:
        try:
            _request, fds, _flags, _addr = socket.recv_fds(control, 1, 4)
        except OSError:
            return
        if len(fds) != 4:
            return  # the host closed its end (or sent nonsense): the sandbox ends
        pid = os.fork()
        if pid == 0:
            _child_exits_after(_run_forked_judge, control, fds)
        for fd in fds:
            os.close(fd)
        _pid, status = os.waitpid(pid, 0)
        clean = _sweep(modes) if sweep else True
        answer = json_dumps([status, clean]).encode()
        try:
            control.sendall(b"%010d" % len(answer) + answer)
        except OSError:
            return
        if not clean:
            return


def _child_exits_after(work, *args):
    """Run `work` in a forked child, then exit: it never returns into its parent's code."""
    code = 0
    try:
        work(*args)
    except BaseException:  # noqa: B036 - whatever happens, the child must not go on as its parent
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run_forked_judge(control, fds):
    """The fork server's child: fresh fds 0-3, subreaper, own session, then the judge."""
    global FORKED_BY_SERVER
    control.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(JUDGE_REPORT_FD + 1, os.sysconf("SC_OPEN_MAX"))
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: the candidate's orphans stay the judge's
    os.setsid()
    os.chdir("/tmp")
    FORKED_BY_SERVER = True
    sys.argv[1:] = [str(JUDGE_REPORT_FD), "all"]
    main()


def _sweep(modes):
    """Leave the sandbox as the fork server found it; False if that is not certain."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # from pid 1: every other process of the namespace
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break  # orphans are pid 1's: no child left means no other process left
    clean = [p for p in os.listdir("/proc") if p.isdigit()] == ["1"]
    for path, mode in modes.items():
        clean = _empty_dir(path) and clean
        try:
            os.chmod(path, mode)
        except OSError:
            clean = False
    for path in _SYSV_IPC:
        try:
            with open(path, "rb") as fh:
                clean = len(fh.read().splitlines()) <= 1 and clean  # the header line only
        except OSError:
            pass
    return clean


def _empty_dir(top):
    """Remove everything under `top` (never following symlinks), whatever its modes."""
    todo = [top]
    dirs = []
    try:
        while todo:
            path = todo.pop()
            os.chmod(path, 0o700)
            dirs.append(path)
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    else:
                        os.unlink(entry.path)
        for path in reversed(dirs[1:]):
            os.rmdir(path)
        return not os.listdir(top)
    except OSError:
        return False


if __name__ == "__main__":
    main()
