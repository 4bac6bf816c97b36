"""``greenai run -- CMD``: measure a whole command, forward signals, keep its exit code."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from greenai.checkpoint import resolve_store
from greenai.errors import ConfigError, GreenAIError
from greenai.measurement import Measurement
from greenai.tracker import Tracker

if TYPE_CHECKING:
    from greenai.store import RunStore


def run_command(
    argv: Sequence[str],
    *,
    name: str | None = None,
    on_stored: Callable[[str, str], None] | None = None,
    prometheus_port: int | None = None,
    prometheus_addr: str = "127.0.0.1",
    scope: Literal["machine", "process"] = "machine",
    **options: Any,
) -> tuple[int, Measurement]:
    """Run ``argv`` under a tracker; return its exit code (128+N if killed by signal N).

    The run is named after the script (``python train.py`` → ``train.py``, ``python -m
    pkg.mod`` → ``pkg.mod``) unless ``name`` is given; with a store, the command and its
    exit code are recorded with it, and ``on_stored(run_id, store_location)`` is called
    (the file, or the database's URL without its password).

    Signals reach the command once. In a terminal the command shares greenai's foreground
    process group, so Ctrl-C reaches it from the terminal and is not sent again; elsewhere
    (a supervisor, CI, a batch job) it runs in its own process group and greenai forwards
    what it gets, so a signal to greenai's process group reaches the command once too. A
    second signal stops the wait: the command (with its process group, outside a terminal)
    is killed and the run kept as ``interrupted``. The first one is answered on stderr with
    a line saying so, once greenai has taken it in.

    Ctrl-C and SIGTERM are forwarded to the command; the run is then ``interrupted``. A
    non-zero exit makes it ``failed``. ``options`` go to :class:`greenai.Tracker`. With
    ``prometheus_port`` (0: any free port), live power and energy are served for
    Prometheus on ``prometheus_addr`` while the command runs: a
    :class:`~greenai.exporters.prometheus.PrometheusExporter` added to the sinks. Every
    such exporter among the sinks binds its port before the command starts. With ``scope="process"``
    the tracker attributes the devices to this process's tree, which holds the command and
    every process it starts (and greenai's own sampler, well under 1% of a CPU); see
    :func:`greenai.devices.attribution.apply_scope`.

    Raises:
        ConfigError: Nothing to run, the command cannot be started, or the Prometheus
            port cannot be served (prometheus-client missing, port in use).
    """
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError(
            "nothing to run: give a command after --, e.g. greenai run -- python train.py"
        )
    _check_program(argv[0])  # before the tracker: a typo must not leave a failed run behind
    name = name or command_name(argv)
    store = options["store"] = resolve_store(options.get("store"))
    meta = {"command": shlex.join(argv), **(options.pop("meta", None) or {})}
    if scope != "machine":
        meta["scope"] = scope
    from greenai.exporters.prometheus import PrometheusExporter

    sinks = list(options.pop("sinks", None) or ())
    if prometheus_port is not None:  # the prometheus sink, as --sink prometheus:PORT
        sinks.append(PrometheusExporter(port=prometheus_port, addr=prometheus_addr))
    tracker = Tracker(
        name or Path(argv[0]).name, meta=meta, scope=scope, sinks=tuple(sinks), **options
    )
    exporters = [s for s in sinks if isinstance(s, PrometheusExporter)]
    try:
        for exporter in exporters:  # bound first: a busy port fails before the command runs
            exporter.start(tracker)
            print(f"greenai: Prometheus metrics at {exporter.url}", file=sys.stderr)
        code, result = _run(argv, tracker)
    finally:
        for exporter in exporters:  # the job's end stopped them; a failed start did not
            exporter.stop()
    if store is not None and tracker.run_id is not None:
        _record_outcome(store, tracker.run_id, shlex.join(argv), code)
        if on_stored is not None:
            on_stored(tracker.run_id, _where(store))
    return code, result


def _check_program(program: str) -> None:
    """Raise ConfigError if ``program`` is neither on PATH nor an executable file."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program)
        if not path.exists():
            raise ConfigError(f"cannot start {program!r}: no such file")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise ConfigError(f"cannot start {program!r}: not an executable file")
    elif shutil.which(program) is None:
        raise ConfigError(f"cannot start {program!r}: not found on PATH")


def command_name(argv: Sequence[str]) -> str:
    """A run's name from its command: the script an interpreter runs, else the program.

    ``python train.py`` → ``train.py``; ``python3 -u -m pkg.train`` → ``pkg.train``;
    ``python -c CODE`` → ``python -c``; ``torchrun ...`` → ``torchrun``.
    """
    program = Path(argv[0]).name
    if not program.startswith(("python", "pypy")):
        return program
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "-m" and args:
            return args[0]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if arg == "-c" or (arg.startswith("-c") and len(arg) > 2):
            return f"{program} -c"
        if arg in ("-W", "-X", "-Q"):  # options that take a value
            args = args[1:]
            continue
        if not arg.startswith("-") or arg == "-":
            return Path(arg).name if arg != "-" else program
    return program


def _where(store: RunStore) -> str:
    from greenai.store.spool import SpooledStore

    if isinstance(store, SpooledStore) and store.spooling:
        return f"{store.spool.location} until {store.location} answers"
    return store.location


def _record_outcome(store: RunStore, run_id: str, command: str, code: int) -> None:
    """Store the command and its exit code with the run (the tracker has closed ``store``).

    The same store object: a PostgreSQL store that was down keeps spooling, unannounced.
    """
    try:
        with store:
            store.record_outcome(run_id, command=command, exit_code=code)
    except GreenAIError as exc:  # the measurement is stored; a lost exit code is a warning
        print(f"greenai: the exit code of run {run_id} was not stored: {exc}", file=sys.stderr)


def _run(argv: list[str], tracker: Tracker) -> tuple[int, Measurement]:
    # The handlers go in before the run is stored: once it is visible a supervisor may
    # signal us, and a SIGTERM that found the default handler would kill greenai (exit
    # -15) instead of being forwarded (143). A signal before the command starts means
    # the command is not started at all. They stay in until the run is stored: a signal
    # that comes once the command has ended (two SIGTERMs 2 ms apart, a third Ctrl-C
    # during stop()) is noted and the record written, never a traceback or a run left
    # ``running``.
    forwarded: list[int] = []
    sent: list[int] = []
    proc: subprocess.Popen[bytes] | None = None
    ended = waiting = False

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        if ended:
            return  # the command is gone; the record is being written (bounded)
        if waiting and len(forwarded) == 2:
            raise _SecondSignal(signum)  # out of proc.wait(): stop waiting, keep the data
        if proc is not None:
            sent.append(signum)
            if not (signum == signal.SIGINT and _in_terminal_foreground(proc.pid)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)  # else Ctrl-C reached it from the terminal
            if len(forwarded) == 1:
                _say(_WAITING_HINT)  # also tells a second signal's sender it is now heard

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tracker.start()
        if forwarded:
            ended = True
            return 128 + forwarded[0], tracker.stop(status="interrupted")
        try:
            proc = _spawn(argv)
        except OSError as exc:
            ended = True
            tracker.stop(status="failed")
            raise ConfigError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        try:
            waiting = True
            if forwarded and not sent:  # it came while the child was starting
                sent.append(forwarded[0])
                proc.send_signal(forwarded[0])
            code = proc.wait()
            ended = True
        except _SecondSignal as again:
            ended = True
            _kill(proc)
            code = -again.signum
        ended = True
        if code == 0 and not forwarded:
            status = "completed"
        elif forwarded or code < 0:
            status = "interrupted"
        else:
            status = "failed"
        result = tracker.stop(status=status)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return (code if code >= 0 else 128 - code), result


_WAITING_HINT = (
    "greenai: waiting for the command to exit; a second Ctrl-C (or SIGTERM) kills it, "
    "and the run is kept as interrupted"
)


def _say(line: str) -> None:
    """Write one line to stderr from a signal handler: unbuffered, never raising.

    ``print`` could find stderr's buffer mid-write in this same thread and raise.
    """
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), (line + "\n").encode())


class _SecondSignal(Exception):
    """A second Ctrl-C or SIGTERM while the command runs: stop waiting for it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command, and what it started when it has a process group of its own."""
    try:
        if os.getpgid(proc.pid) == proc.pid != os.getpgrp():
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.wait()


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start the command: in greenai's process group in a terminal, else in its own.

    In a terminal, Ctrl-C goes to the whole foreground process group: the command must be
    in it (and may read the terminal). Elsewhere it gets its own group, so that a signal
    sent to greenai's group reaches it once, through greenai, not twice.
    """
    if _in_terminal_foreground(os.getpid()):
        return subprocess.Popen(argv)
    if sys.version_info >= (3, 11):
        return subprocess.Popen(argv, process_group=0)
    return subprocess.Popen(argv, preexec_fn=os.setpgrp)  # pragma: no cover


def _in_terminal_foreground(pid: int) -> bool:
    """Whether ``pid`` is in the foreground process group of greenai's terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal
    try:
        return os.tcgetpgrp(fd) == os.getpgid(pid)
    except OSError:
        return False
    finally:
        os.close(fd)
