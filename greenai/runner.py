"""``greenai run -- CMD``: measure a whole command, forward signals, keep its exit code."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.tracker import Tracker


def run_command(
    argv: Sequence[str],
    *,
    name: str | None = None,
    prometheus_port: int | None = None,
    prometheus_addr: str = "127.0.0.1",
    scope: Literal["machine", "process"] = "machine",
    **options: Any,
) -> tuple[int, Measurement]:
    """Run ``argv`` under a tracker; return its exit code (128+N if killed by signal N).

    Ctrl-C and SIGTERM are forwarded to the command; the run is then ``interrupted``. A
    non-zero exit makes it ``failed``. ``options`` go to :class:`greenai.Tracker`. With
    ``prometheus_port`` (0: any free port), live power and energy are served for
    Prometheus on ``prometheus_addr`` while the command runs. With ``scope="process"``
    the devices are attributed to this process's tree, which holds the command and every
    process it starts (and greenai's own sampler, well under 1% of a CPU); see
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
    meta = {"command": shlex.join(argv), **(options.pop("meta", None) or {})}
    if scope != "machine":
        from greenai.devices.attribution import apply_scope
        from greenai.devices.discovery import discover

        devices = options.get("devices")
        devices = discover() if devices is None else list(devices)
        options["devices"] = apply_scope(devices, scope, pid=os.getpid())
        meta["scope"] = scope
    tracker = Tracker(name or Path(argv[0]).name, meta=meta, **options)
    exporter = None
    if prometheus_port is not None:  # started first: a busy port fails before the command
        from greenai.exporters.prometheus import PrometheusExporter

        exporter = PrometheusExporter(tracker, port=prometheus_port, addr=prometheus_addr).start()
        print(f"greenai: Prometheus metrics at {exporter.url}", file=sys.stderr)
    try:
        return _run(argv, tracker)
    finally:
        if exporter is not None:
            exporter.stop()


def _run(argv: list[str], tracker: Tracker) -> tuple[int, Measurement]:
    # The handlers go in before the run is stored: once it is visible a supervisor may
    # signal us, and a SIGTERM that found the default handler would kill greenai (exit
    # -15) instead of being forwarded (143). A signal before the command starts means
    # the command is not started at all.
    forwarded: list[int] = []
    sent: list[int] = []
    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        if proc is not None:
            sent.append(signum)
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tracker.start()
        if forwarded:
            return 128 + forwarded[0], tracker.stop(status="interrupted")
        try:
            proc = subprocess.Popen(argv)
        except OSError as exc:
            tracker.stop(status="failed")
            raise ConfigError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        if forwarded and not sent:  # it came while the child was starting
            sent.append(forwarded[0])
            proc.send_signal(forwarded[0])
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code == 0 and not forwarded:
        status = "completed"
    elif forwarded or code < 0:
        status = "interrupted"
    else:
        status = "failed"
    result = tracker.stop(status=status)
    return (code if code >= 0 else 128 - code), result
