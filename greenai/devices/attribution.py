"""Per-process attribution: the share of a device's energy charged to one process tree.

Machine scope (the default) reports what the hardware drew, whoever used it. Process scope
wraps each device in :class:`Attributed`, which charges the tracked process tree a share of
every interval between two reads:

- CPU (a RAPL package counter or the CPU model): the tree's CPU time over the busy CPU time
  of the CPUs the device covers, both from the kernel's counters (psutil). Time the tree's
  processes spent in children they have reaped is included (``children_user`` and
  ``children_system``), so short-lived subprocesses are not lost.
- GPU (NVML): the tree's share of the SM utilisation samples NVML keeps per process
  (``nvmlDeviceGetProcessUtilization``); where the driver has none for an interval, the
  power is split evenly among the processes holding a compute context on the GPU
  (``nvmlDeviceGetComputeRunningProcesses``), so idle draw is charged to who holds the GPU.
- Memory: the tree's resident memory over the memory in use the model charges.

An attributed figure keeps its device's ``method`` (a RAPL counter stays ``counter``), but
its device has ``scope == "process"`` and a name ending ``@process``, so no report can show
it as what the hardware drew. The share is a convention, not a measurement: CPU time is not
energy (vector units draw more per second than a spinning lock), and the uncertainty a
device declares covers its readings, not the convention.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

import psutil

from greenai.devices.base import Device, Reading, Scope
from greenai.errors import ConfigError, DeviceReadError, MeasurementWarning

__all__ = [
    "Attributed",
    "CpuTimeShare",
    "GpuProcessShare",
    "MemoryShare",
    "Share",
    "apply_scope",
    "tree_cpu_seconds",
    "tree_pids",
]

SUFFIX = "@process"

Share = Callable[[], float]
"""Returns the share (0-1) charged to the process tree since its previous call."""


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def tree_pids(pid: int) -> set[int]:
    """The ids of a process and all its descendants now (empty when it is gone)."""
    try:
        return {p.pid for p in _tree(pid)}
    except psutil.Error:
        return set()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by a process tree, reaped children included.

    Each live member's user + system time, plus the time of the children it has reaped.
    Summed this way the total is continuous: when a child exits and its parent reaps it, its
    time moves from its own entry into the parent's ``children_*`` fields.

    Raises:
        psutil.NoSuchProcess: The root process is gone.
    """
    total = 0.0
    for proc in _tree(pid):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # exited between listing and reading: its time is lost
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine (all CPUs), as the kernel counts them."""
    t = psutil.cpu_times()._asdict()
    total = sum(v for k, v in t.items() if k not in ("guest", "guest_nice"))
    return float(total - t.get("idle", 0.0) - t.get("iowait", 0.0) - t.get("steal", 0.0))


class CpuTimeShare:
    """The tree's CPU time over the busy CPU time of the covered CPUs, per interval.

    Args:
        pid: The root of the process tree.
        tree_cpu_s: Cumulative CPU seconds of the tree; :func:`tree_cpu_s` when None.
        busy_cpu_s: Cumulative busy CPU seconds of what the device covers; the whole
            machine's when None.
    """

    def __init__(
        self,
        pid: int,
        *,
        tree_cpu_s: Callable[[], float] | None = None,
        busy_cpu_s: Callable[[], float] | None = None,
    ) -> None:
        self.pid = pid
        self._tree = tree_cpu_s or (lambda: tree_cpu_seconds(pid))
        self._busy = busy_cpu_s or machine_busy_cpu_s
        self._last: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Share since the previous call (0 on the first)."""
        with self._lock:
            now = (float(self._tree()), float(self._busy()))
            last, self._last = self._last, now
        if last is None:
            return 0.0
        busy = now[1] - last[1]
        # A process leaving the tree unreaped makes the sum drop: that interval counts 0.
        ours = max(now[0] - last[0], 0.0)
        if busy <= 0:
            return 0.0
        return min(ours / busy, 1.0)


class MemoryShare:
    """The tree's resident memory over the memory in use the model charges.

    Taken now, not per interval: memory is a level, not a count.

    Args:
        pid: The root of the process tree.
        used_bytes: Memory in use that the device charges; ``psutil.virtual_memory().used``
            when None.
        tree_rss_bytes: The tree's resident memory; summed with psutil when None.
    """

    def __init__(
        self,
        pid: int,
        *,
        used_bytes: Callable[[], float] | None = None,
        tree_rss_bytes: Callable[[], float] | None = None,
    ) -> None:
        self.pid = pid
        self._used = used_bytes or (lambda: float(psutil.virtual_memory().used))
        self._rss = tree_rss_bytes or self._tree_rss

    def _tree_rss(self) -> float:
        total = 0.0
        for proc in _tree(self.pid):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def __call__(self) -> float:
        """The share now."""
        used = float(self._used())
        return min(float(self._rss()) / used, 1.0) if used > 0 else 0.0


GpuMode = Literal["utilisation", "contexts", "namespace-estimate"]


class GpuProcessShare:
    """The tree's share of an NVIDIA GPU from NVML's per-process accounting.

    Per interval: the tree's part of the SM utilisation samples NVML recorded since the
    last call; with no samples (the driver keeps none, or the GPU idled), an even split
    among the processes holding a compute context.

    Args:
        pid: The root of the process tree.
        nvml: The pynvml module (or a test stand-in) the GPU is read through.
        handle: Returns the GPU's NVML handle (available once the GPU is open).
        pids: Returns the tree's process ids; :func:`tree_pids` when None.
        pid_namespace: Whether this process has its own PID namespace (a container);
            :func:`~greenai.devices.namespaces.in_pid_namespace` when None. There NVML's
            host process ids cannot be matched, and the share is an estimate (mode
            ``namespace-estimate``): the tree's processes holding the GPU's device file
            (``holders``) over the processes NVML counts on the GPU, with a
            :class:`~greenai.errors.MeasurementWarning` saying so once.
        holders: Returns how many of the given pids hold this GPU open;
            :func:`~greenai.devices.namespaces.gpu_holders` with the GPU's minor number
            when None.
    """

    def __init__(
        self,
        pid: int,
        nvml: ModuleType,
        handle: Callable[[], Any],
        *,
        pids: Callable[[], set[int]] | None = None,
        pid_namespace: bool | None = None,
        holders: Callable[[set[int]], int] | None = None,
    ) -> None:
        from greenai.devices.namespaces import in_pid_namespace

        self.pid = pid
        self._nvml = nvml
        self._handle = handle
        self._pids = pids or (lambda: tree_pids(pid))
        in_namespace = in_pid_namespace() if pid_namespace is None else pid_namespace
        self.mode: GpuMode = "namespace-estimate" if in_namespace else "utilisation"
        self._holders = holders or self._device_file_holders
        self._warned = False
        self._last_ts = 0
        self._lock = threading.Lock()

    def _device_file_holders(self, pids: set[int]) -> int:
        from greenai.devices.namespaces import gpu_holders

        try:
            minor: int | None = int(self._nvml.nvmlDeviceGetMinorNumber(self._handle()))
        except Exception:  # an unknown minor: any NVIDIA device file counts
            minor = None
        return gpu_holders(pids, minor)

    def _namespace_estimate(self, ours: set[int]) -> float:
        running = len(self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle()))
        if not self._warned:
            self._warned = True
            warnings.warn(
                "process scope in a PID namespace (a container): NVML's process ids are the"
                " host's and cannot be matched here, so the GPU is charged by an estimate:"
                " the tracked processes holding it open over the processes on it",
                MeasurementWarning,
                stacklevel=2,
            )
        if running <= 0:
            return 0.0
        return min(self._holders(ours) / running, 1.0)

    def _samples(self) -> list[Any]:
        nvml = self._nvml
        try:
            samples = list(nvml.nvmlDeviceGetProcessUtilization(self._handle(), self._last_ts))
        except nvml.NVMLError as err:
            code = getattr(err, "value", None)
            # No sample newer than the timestamp: NOT_FOUND, or SUCCESS raised by pynvml
            # when NVML answers "0 samples" to its size query.
            if code in (nvml.NVML_ERROR_NOT_FOUND, nvml.NVML_SUCCESS):
                return []
            if code in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                self.mode = "contexts"
                return []
            raise
        if samples:
            self._last_ts = max(int(s.timeStamp) for s in samples)
        return samples

    def __call__(self) -> float:
        """Share since the previous call."""
        with self._lock:
            ours = self._pids()
            if self.mode == "namespace-estimate":
                return self._namespace_estimate(ours)
            samples = self._samples() if self.mode == "utilisation" else []
            total = sum(int(s.smUtil) for s in samples)
            if total > 0:
                return sum(int(s.smUtil) for s in samples if int(s.pid) in ours) / total
            running = {
                int(p.pid) for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle())
            }
            return len(running & ours) / len(running) if running else 0.0


class Attributed(Device):
    """A device whose readings are charged to one process tree by a share.

    Energy of each interval between reads is the wrapped device's energy times the share
    over that interval, summed into a running total (an absolute value: trackers sharing
    this object each keep their own origin); power is the wrapped power times the latest
    share. Not read by the native loop: the share is computed in Python.

    Args:
        device: The machine-scope device to attribute.
        share: Returns the share (0-1) since its previous call.
        pid: The tracked process tree's root, for :meth:`detail`.
        how: One line on the share, for :meth:`detail`.
    """

    scope: Scope = "process"

    def __init__(self, device: Device, share: Share, *, pid: int, how: str) -> None:
        if device.scope != "machine":
            raise ConfigError(f"{device.name} is already attributed; wrap a machine device")
        self.device = device
        self.pid = pid
        self.how = how
        self.name = f"{device.name}{SUFFIX}"
        self.kind = device.kind
        self.update_period_s = device.update_period_s
        self.counter_resolution_j = device.counter_resolution_j
        self._share = share
        self._lock = threading.Lock()
        self._last_energy_j: float | None = None
        self._energy_j = 0.0
        self.last_share: float | None = None

    @property
    def share(self) -> Share:
        """What computes the share (a :class:`CpuTimeShare`, GPU share, ...)."""
        return self._share

    @property
    def method(self) -> Any:  # type: ignore[override]
        """The wrapped device's method (known for a GPU only after open)."""
        return self.device.method

    @property
    def power_limit_w(self) -> float | None:  # type: ignore[override]
        """The wrapped device's power limit (W; known for a GPU only after open)."""
        return self.device.power_limit_w

    @property
    def power_window_s(self) -> float | None:  # type: ignore[override]
        """How long the wrapped device's power values average (s; after open)."""
        return self.device.power_window_s

    @property
    def relative_uncertainty(self) -> float:  # type: ignore[override]
        """The wrapped device's relative uncertainty."""
        return self.device.relative_uncertainty

    def open(self) -> None:
        """Open the wrapped device and take the first share baseline.

        Raises:
            DeviceError: The wrapped device cannot be opened.
        """
        self.device.open()
        try:
            self._share()
        except Exception:
            self.device.close()
            raise

    def read(self) -> Reading:
        """Read the wrapped device and charge the tree its share of the interval.

        Raises:
            DeviceReadError: The wrapped device failed, or the share could not be computed
                (for example the tracked process is gone).
        """
        with self._lock:
            reading = self.device.read()
            try:
                share = float(self._share())
            except Exception as e:  # psutil or NVML: convert at the boundary
                raise DeviceReadError(f"{self.name}: cannot compute the share: {e}") from e
            self.last_share = share
            energy_j = None
            if reading.energy_j is not None:
                if self._last_energy_j is not None:
                    self._energy_j += max(reading.energy_j - self._last_energy_j, 0.0) * share
                self._last_energy_j = reading.energy_j
                energy_j = self._energy_j
            power_w = reading.power_w * share if reading.power_w is not None else None
            return Reading(energy_j=energy_j, power_w=power_w)

    def close(self) -> None:
        """Close the wrapped device (counted: it may be shared). Never raises."""
        self.device.close()

    def detail(self) -> str:
        """The wrapped device's detail and how the share is computed."""
        how = self.how
        if getattr(self._share, "mode", None) == "namespace-estimate":
            how = "an estimate in a PID namespace (its processes holding the GPU over all on it)"
        return f"attributed to process tree {self.pid} by {how}; {self.device.detail()}"


def _attribute(device: Device, pid: int) -> Device:
    """Wrap one machine-scope device for a process tree; unattributable ones come back as is.

    What the share is computed from is what the device declares (:meth:`Device.share_inputs`),
    never its class.
    """
    inputs = device.share_inputs()
    if inputs.nvml is not None:  # the driver keeps per-process samples
        return Attributed(
            device,
            _LazyGpuShare(pid, inputs.nvml),
            pid=pid,
            how="NVML per-process SM utilisation (even split among compute contexts when "
            "NVML has no samples)",
        )
    if device.kind == "cpu":
        from greenai.devices.namespaces import container_cpu_seconds

        container = container_cpu_seconds(pid)  # the tree is a whole container: its cgroup
        return Attributed(
            device,
            CpuTimeShare(pid, busy_cpu_s=inputs.busy_cpu_s, tree_cpu_s=container),
            pid=pid,
            how="its share of busy CPU time ("
            + ("the container's cgroup v2 cpu.stat" if container else "psutil")
            + ")",
        )
    if device.kind == "dram" and inputs.used_bytes is not None:
        return Attributed(
            device,
            MemoryShare(pid, used_bytes=inputs.used_bytes),
            pid=pid,
            how="its resident memory over the memory in use",
        )
    if device.kind == "dram":
        # A DRAM counter (RAPL) is charged like the CPU: memory traffic follows CPU work
        # more closely than resident bytes do.
        return Attributed(
            device,
            CpuTimeShare(pid, busy_cpu_s=inputs.busy_cpu_s),
            pid=pid,
            how="its share of busy CPU time (psutil)",
        )
    return device


class _LazyGpuShare:
    """A :class:`GpuProcessShare` built at the first call, when the GPU's NVML is loaded."""

    def __init__(self, pid: int, nvml: Callable[[], tuple[ModuleType, Any]]) -> None:
        self._pid, self._nvml = pid, nvml
        self._share: GpuProcessShare | None = None

    @property
    def mode(self) -> GpuMode:
        """``"utilisation"`` until NVML turns out to keep no per-process samples."""
        return self._share.mode if self._share is not None else "utilisation"

    def __call__(self) -> float:
        if self._share is None:
            module, _ = self._nvml()
            self._share = GpuProcessShare(self._pid, module, lambda: self._nvml()[1])
        return self._share()


def apply_scope(
    devices: list[Device], scope: Literal["machine", "process"], pid: int | None = None
) -> list[Device]:
    """Return the devices to measure for a scope.

    Args:
        devices: Machine-scope devices (from :func:`~greenai.devices.discover` or given).
        scope: ``"machine"`` returns them unchanged; ``"process"`` wraps each in
            :class:`Attributed`, charged to the tree rooted at ``pid``. A device that cannot
            be attributed (an unknown kind) stays machine scope, with a
            :class:`~greenai.errors.MeasurementWarning`.
        pid: Root of the process tree; this process when None.

    Returns:
        A new list, in the same order.

    Raises:
        ConfigError: ``scope`` is neither, ``pid`` is not a running process, or a device is
            attributed already.
    """
    if scope == "machine":
        return list(devices)
    if scope != "process":
        raise ConfigError(f"scope must be 'machine' or 'process', got {scope!r}")
    pid = os.getpid() if pid is None else pid
    if isinstance(pid, bool) or not isinstance(pid, int) or not psutil.pid_exists(pid):
        raise ConfigError(f"pid {pid!r} is not a running process; pass the job's process id")
    scoped: list[Device] = []
    whole: list[str] = []
    for device in devices:
        if device.scope != "machine":
            raise ConfigError(f"{device.name} is already attributed (scope {device.scope!r})")
        wrapped = _attribute(device, pid)
        if wrapped is device:
            whole.append(device.name)
        scoped.append(wrapped)
    if whole:
        warnings.warn(
            f"cannot attribute {', '.join(whole)} to a process; measured whole (machine scope)",
            MeasurementWarning,
            stacklevel=2,
        )
    return scoped
