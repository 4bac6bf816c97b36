"""NVIDIA GPUs read through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

One :class:`NvidiaGPU` per physical GPU. Where the GPU has it (Volta and newer), the
total-energy counter is the backbone of the measurement; instant power only shapes the
energy between two counter updates. :func:`discover_gpus` finds the GPUs this process can
see under ``CUDA_VISIBLE_DEVICES`` and returns an empty list, never an error, on a machine
without a usable NVIDIA driver. NVML reports power only for a whole GPU: a MIG instance
selected by ``CUDA_VISIBLE_DEVICES=MIG-…`` is charged an estimated share of its parent
(:mod:`greenai.devices.mig`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal

from greenai.devices.base import Device, LoopSource, Reading, ShareInputs
from greenai.devices.library import LibraryGPU
from greenai.errors import (
    DeviceError,
    DeviceReadError,
    DeviceUnavailableError,
    DriverMismatchError,
    MeasurementWarning,
    MIGNotSupportedError,
)

__all__ = ["NvidiaGPU", "discover_gpus", "visible_gpu_selectors"]

_MIG_ADVICE = (
    "NVML reports power only for the whole GPU, not for a MIG instance; measure with the "
    "parent GPU visible, e.g. unset CUDA_VISIBLE_DEVICES or set it to the GPU's UUID (GPU-...)"
)
_MISMATCH_HINT = (
    "the NVML library and the kernel driver versions differ (usually after a driver "
    "update); reboot, or reinstall the NVIDIA driver"
)
_NO_DRIVER_HINT = "NVIDIA driver/NVML not found"

# The one map from NVML error codes to greenai errors, with what the user can do. Keyed by
# constant name and resolved against the loaded module, so tests can inject a fake one.
# Codes not listed become DeviceError (DeviceReadError during read()).
_ERROR_MAP: dict[str, tuple[type[DeviceError], str]] = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": (DeviceUnavailableError, _NO_DRIVER_HINT),
    "NVML_ERROR_DRIVER_NOT_LOADED": (DeviceUnavailableError, _NO_DRIVER_HINT),
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (DriverMismatchError, _MISMATCH_HINT),
    "NVML_ERROR_FUNCTION_NOT_FOUND": (DriverMismatchError, _MISMATCH_HINT),
    "NVML_ERROR_NO_PERMISSION": (
        DeviceError,
        "this user may not query the GPU; check access to /dev/nvidia* or ask an administrator",
    ),
    "NVML_ERROR_GPU_IS_LOST": (
        DeviceReadError,
        "the GPU stopped responding; check `nvidia-smi` and the kernel log for Xid errors",
    ),
}

# Union member of c_nvmlValue_t to read for each NVML_VALUE_TYPE_* of a field value.
_VALUE_MEMBERS = {
    "NVML_VALUE_TYPE_DOUBLE": "dVal",
    "NVML_VALUE_TYPE_UNSIGNED_INT": "uiVal",
    "NVML_VALUE_TYPE_UNSIGNED_LONG": "ulVal",
    "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG": "ullVal",
    "NVML_VALUE_TYPE_SIGNED_LONG_LONG": "sllVal",
    "NVML_VALUE_TYPE_SIGNED_INT": "siVal",
    "NVML_VALUE_TYPE_UNSIGNED_SHORT": "usVal",
}

_LEADING_DIGITS = re.compile(r"\d+")

PowerSource = Literal["instant", "average"]


def _to_greenai_error(
    nvml: ModuleType, err: Exception, context: str, *, read: bool = False
) -> DeviceError:
    """Convert an NVMLError into the greenai error the user sees, with a hint when known."""
    code = getattr(err, "value", None)
    cls: type[DeviceError] = DeviceError
    hint = ""
    for code_name, (mapped, mapped_hint) in _ERROR_MAP.items():
        if code is not None and code == getattr(nvml, code_name, None):
            cls, hint = mapped, mapped_hint
            break
    if read:
        cls = DeviceReadError
    return cls(f"{context}: NVML error: {err}" + (f" ({hint})" if hint else ""))


def _is_unsupported(nvml: ModuleType, err: Exception) -> bool:
    """Whether an NVMLError means "this GPU or driver lacks the feature" rather than a fault."""
    code = getattr(err, "value", None)
    # FUNCTION_NOT_FOUND on an optional call means a driver older than the function.
    return code in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND)


def _load_nvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError as err:
        raise DeviceUnavailableError(
            "NVIDIA GPUs need pynvml, which is not installed: pip install nvidia-ml-py"
        ) from err


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvidiaGPU(LibraryGPU):
    """One physical NVIDIA GPU, read through NVML.

    Energy comes from the total-energy counter (mJ since the driver loaded; Volta and newer)
    when the GPU has one (``method == "counter"``), otherwise from integrated power
    (``method == "power"``). Power comes from the instant-power field
    ``NVML_FI_DEV_POWER_INSTANT`` where supported, else from ``nvmlDeviceGetPowerUsage``,
    which on Hopper is a 1 s moving average that lags load changes. Both refresh about every
    100 ms (measured on an H100). ``method`` and ``relative_uncertainty`` are known only
    after :meth:`open`.

    Args:
        index: Position among the GPUs visible to this process, as CUDA numbers them. The
            device is named ``f"gpu{index}"``.
        nvml: The pynvml module, or a stand-in for tests. By default pynvml is imported in
            :meth:`open`.
        handle: An NVML device handle to use instead of looking one up.
        name: Device name to use instead of ``f"gpu{index}"``.
        physical_index: NVML's index of the GPU. Defaults to ``index`` when neither
            ``handle`` nor ``uuid`` is given: use :func:`discover_gpus` to honour
            ``CUDA_VISIBLE_DEVICES``.
        uuid: The GPU's UUID (``GPU-...``); when given, :meth:`open` looks the GPU up by it.
    """

    counter_resolution_j = 0.001
    library = "NVML"
    init_function = "nvmlInit"
    shutdown_function = "nvmlShutdown"
    error_class = "NVMLError"
    _load = staticmethod(_load_nvml)
    _power: PowerSource | None

    def __init__(
        self,
        index: int,
        *,
        nvml: ModuleType | None = None,
        handle: Any = None,
        name: str | None = None,
        physical_index: int | None = None,
        uuid: str | None = None,
    ) -> None:
        if physical_index is None and handle is None and uuid is None:
            physical_index = index
        super().__init__(
            index,
            module=nvml,
            name=name if name is not None else f"gpu{index}",
            physical_index=physical_index,
            uuid=uuid,
        )
        self._given_handle = handle
        self._handle = handle

    @property
    def nvml(self) -> ModuleType | None:
        """The pynvml module (or a test stand-in) this GPU is read through."""
        return self._module

    @property
    def handle(self) -> Any:
        """The NVML handle of the GPU while it is open (or the handle given), else None."""
        return self._handle if self._open else self._given_handle

    def loop_source(self) -> LoopSource | None:
        """The GPU by UUID for the native loop, with its UUID known.

        Only through the real ``pynvml``: a test stand-in module is read by Python.
        """
        if self.nvml is None or self.nvml is not sys.modules.get("pynvml") or not self.uuid:
            return None
        energy_ns = int(self.update_period_s * 1e9) if self.has_counter else 0
        return LoopSource(
            "nvml", uuid=self.uuid, power=self.power_source or "none", energy_period_ns=energy_ns
        )

    def share_inputs(self) -> ShareInputs:
        """NVML's per-process samples: the driver reports each process's use of the GPU."""
        return ShareInputs(nvml=self._nvml_and_handle)

    def _nvml_and_handle(self) -> tuple[ModuleType, Any]:
        nvml, handle = self.nvml, self.handle
        if nvml is None or handle is None:
            raise DeviceReadError(f"{self.name} is not open")
        return nvml, handle

    @property
    def power_source(self) -> PowerSource | None:
        """The power reading :meth:`open` chose: ``"instant"``, ``"average"`` or None."""
        return self._power

    @staticmethod
    def _convert(
        module: ModuleType, err: Exception, context: str, *, read: bool = False
    ) -> DeviceError:
        return _to_greenai_error(module, err, context, read=read)

    def _closed_handle(self) -> Any:
        return self._given_handle

    def _probe(self, nvml: ModuleType) -> None:
        handle = self._given_handle
        if handle is None and self.uuid is not None:
            handle = nvml.nvmlDeviceGetHandleByUUID(self.uuid)
        elif handle is None:
            handle = nvml.nvmlDeviceGetHandleByIndex(self.physical_index)
        try:
            is_mig = nvml.nvmlDeviceIsMigDeviceHandle(handle)
        except nvml.NVMLError as err:
            if not _is_unsupported(nvml, err):
                raise
            is_mig = 0
        if int(getattr(is_mig, "value", is_mig)):  # pynvml returns a ctypes c_uint
            raise MIGNotSupportedError(f"{self.name} is a MIG instance: {_MIG_ADVICE}")
        self.model = _text(nvml.nvmlDeviceGetName(handle))
        if self.uuid is None:
            self.uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        if self.physical_index is None:
            self.physical_index = int(nvml.nvmlDeviceGetIndex(handle))

        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self._has_counter = True
        except nvml.NVMLError as err:
            if not _is_unsupported(nvml, err):
                raise
            self._has_counter = False
        self._power = self._probe_power(nvml, handle)
        if not self._has_counter and self._power is None:
            raise DeviceUnavailableError(
                f"{self.name} ({self.model}) reports neither an energy counter nor power"
            )
        self.method = "counter" if self._has_counter else "power"
        # Averaged power lags load changes: integrating it under-read a 6 s burst by 6.9%
        # on an H100, where instant power stayed within 0.3% of the counter.
        self.relative_uncertainty = 0.05 if self._power == "instant" else 0.10
        self.power_limit_w = _enforced_power_limit_w(nvml, handle)
        self.power_window_s = power_window_s(self.model)
        self._handle = handle

    def _probe_power(self, nvml: ModuleType, handle: Any) -> PowerSource | None:
        try:
            _instant_power_mw(nvml, handle)
            return "instant"
        except nvml.NVMLError:
            # Drivers that predate the field answer with various codes; a real fault
            # surfaces again from the fallback below.
            pass
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
            return "average"
        except nvml.NVMLError as err:
            if not _is_unsupported(nvml, err):
                raise
            return None

    def read(self) -> Reading:
        """Read the energy counter (J) and power (W) as probed in :meth:`open`.

        Raises:
            DeviceReadError: The device is not open, or NVML failed on this read.
        """
        nvml = self._module
        if not self._open or nvml is None:
            raise DeviceReadError(f"{self.name}: read() before open()")
        handle = self._handle
        energy_j = power_w = None
        try:
            if self._has_counter:
                energy_j = nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0
            if self._power == "instant":
                power_w = _instant_power_mw(nvml, handle) / 1000.0
            elif self._power == "average":
                power_w = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except nvml.NVMLError as err:
            raise _to_greenai_error(nvml, err, f"{self.name}: read failed", read=True) from err
        return Reading(energy_j=energy_j, power_w=power_w)

    def detail(self) -> str:
        """Model, NVML index, UUID and the NVML sources used."""
        where = f"{self.model or 'NVIDIA GPU'} (NVML index {self.physical_index}, {self.uuid})"
        if not self._open and self.model is None:
            return f"{where}; not opened yet"
        energy = "total-energy counter (mJ)" if self._has_counter else "integrated power"
        power = {
            "instant": "NVML_FI_DEV_POWER_INSTANT (mW)",
            "average": "nvmlDeviceGetPowerUsage (mW; a 1 s moving average on Hopper)",
            None: "none",
        }[self._power]
        return f"{where}; energy: {energy}; power: {power}"


def _instant_power_mw(nvml: ModuleType, handle: Any) -> float:
    """Read NVML_FI_DEV_POWER_INSTANT in mW; raise NVMLError when the field fails."""
    value = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
    if value.nvmlReturn != nvml.NVML_SUCCESS:
        raise nvml.NVMLError(value.nvmlReturn)
    member = "uiVal"
    for type_name, candidate in _VALUE_MEMBERS.items():
        if value.valueType == getattr(nvml, type_name, None):
            member = candidate
            break
    return float(getattr(value.value, member))


def visible_gpu_selectors(environ: Mapping[str, str] | None = None) -> list[str | int] | None:
    """Parse ``CUDA_VISIBLE_DEVICES`` the way CUDA does.

    Entries are NVML indices (ints) or UUIDs or unique UUID prefixes (``"GPU-..."``, str).
    Like CUDA, parsing stops at the first invalid entry (``"0,-1,1"`` means GPU 0 only), an
    entry is read like ``strtoul`` (``"1gpu"`` is 1), and ``""``, ``"-1"`` or
    ``"NoDevFiles"`` hide every GPU. Indices out of range, unknown or ambiguous UUIDs and
    repeats are judged by :func:`discover_gpus`, which needs NVML.

    Args:
        environ: The environment to read; ``os.environ`` by default.

    Returns:
        None when the variable is unset (all GPUs are visible), else the selectors in
        CUDA's order.

    ``MIG-…`` entries (MIG instances) are kept as they are; :func:`discover_gpus` resolves
    them.
    """
    value = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    selectors: list[str | int] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry.startswith(("GPU-", "MIG-")):
            selectors.append(entry)
            continue
        digits = _LEADING_DIGITS.match(entry)
        if digits is None:
            break
        selectors.append(int(digits.group()))
    return selectors


def _resolve(selectors: list[str | int], uuids: list[str]) -> list[int]:
    """Map selectors to NVML indices with CUDA's rules for invalid and repeated entries."""
    physical: list[int] = []
    for selector in selectors:
        if isinstance(selector, int):
            index = selector if selector < len(uuids) else -1
        else:
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(selector)]
            index = matches[0] if len(matches) == 1 else -1
        if index < 0:
            break  # CUDA: the first unknown or ambiguous entry ends the list.
        if index in physical:
            return []  # CUDA: a repeated GPU leaves no GPU visible.
        physical.append(index)
    return physical


def _mig_enabled(nvml: ModuleType, handle: Any) -> bool:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError as err:
        if not _is_unsupported(nvml, err):
            raise
        return False
    return bool(current == nvml.NVML_DEVICE_MIG_ENABLE)


def discover_gpus(
    *, nvml: ModuleType | None = None, environ: Mapping[str, str] | None = None
) -> list[Device]:
    """Find the NVIDIA GPUs this process can see, in CUDA's order.

    NVML is initialised and shut down again here; the GPUs are returned not opened, for
    the sampler to :meth:`~NvidiaGPU.open`. A GPU in MIG mode is measured as a whole (all
    its instances), with a :class:`~greenai.errors.MeasurementWarning` saying so.

    Integer entries of ``CUDA_VISIBLE_DEVICES`` are taken as NVML indices, which follow
    PCI bus order; CUDA's numbering matches only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or
    identical GPUs. UUIDs identify a GPU either way.

    Args:
        nvml: The pynvml module, or a stand-in for tests; imported by default.
        environ: The environment to read ``CUDA_VISIBLE_DEVICES`` from; ``os.environ`` by
            default.

    Returns:
        The visible GPUs, named gpu0, gpu1, ... by visible position. Empty when pynvml or
        the driver is missing; empty with one
        :class:`~greenai.errors.DeviceFailureWarning` when NVML fails otherwise (for
        example a driver/library version mismatch).

    When ``CUDA_VISIBLE_DEVICES`` names MIG instances (``MIG-…``), CUDA shows only those:
    each becomes a :class:`~greenai.devices.mig.MigInstance`, its parent GPU's readings times
    its share of the GPU's SMs, an estimate (``method == "model"``).

    Raises:
        MIGNotSupportedError: A MIG instance that NVML does not list, or whose SM share it
            does not give.
    """
    selectors = visible_gpu_selectors(environ)
    if selectors == []:
        return []
    migs = [s for s in selectors or () if isinstance(s, str) and s.startswith("MIG-")]
    if migs:
        return _discover_mig(nvml, migs)

    def listed(module: ModuleType) -> tuple[list[str], list[int], list[int]]:
        handles = [module.nvmlDeviceGetHandleByIndex(i) for i in range(module.nvmlDeviceGetCount())]
        uuids = [_text(module.nvmlDeviceGetUUID(handle)) for handle in handles]
        physical = list(range(len(uuids))) if selectors is None else _resolve(selectors, uuids)
        return uuids, physical, [i for i in physical if _mig_enabled(module, handles[i])]

    found = NvidiaGPU.listing(nvml, "NVIDIA GPUs", listed)
    if found is None:
        return []
    module, (uuids, physical, in_mig_mode) = found
    if in_mig_mode:
        warnings.warn(
            f"NVIDIA GPU(s) {', '.join(uuids[i] for i in in_mig_mode)} are in MIG mode: "
            "NVML measures the whole GPU, so energy covers all its MIG instances",
            MeasurementWarning,
            stacklevel=2,
        )
    return [
        NvidiaGPU(position, nvml=module, physical_index=index, uuid=uuids[index])
        for position, index in enumerate(physical)
    ]


def _discover_mig(nvml: ModuleType | None, selectors: list[str]) -> list[Device]:
    """The MIG instances ``selectors`` name, each estimated from its parent GPU."""
    from greenai.devices.mig import MigInstance, find_mig_instance, sm_share

    def listed(module: ModuleType) -> list[tuple[int, str, str, float, str]]:
        parents = [module.nvmlDeviceGetHandleByIndex(i) for i in range(module.nvmlDeviceGetCount())]
        out = []
        for selector in selectors:
            found = find_mig_instance(module, parents, selector)
            if found is None:
                raise MIGNotSupportedError(
                    f"CUDA_VISIBLE_DEVICES selects {selector}, which NVML does not list"
                    " (check `nvidia-smi -L`)"
                )
            index, mig, uuid = found
            try:
                share = sm_share(module, parents[index], mig)
            except DeviceError as err:
                raise MIGNotSupportedError(f"{selector}: {err}; {_MIG_ADVICE}") from err
            profile = (
                f"{module.nvmlDeviceGetAttributes(mig).multiprocessorCount} of"
                f" {module.nvmlDeviceGetAttributes(parents[index]).multiprocessorCount} SMs"
            )
            parent_uuid = _text(module.nvmlDeviceGetUUID(parents[index]))
            out.append((index, parent_uuid, uuid, share, profile))
        return out

    found = NvidiaGPU.listing(nvml, "NVIDIA MIG instances", listed)
    if found is None:
        return []
    module, instances = found
    return [
        MigInstance(
            NvidiaGPU(position, nvml=module, physical_index=index, uuid=parent_uuid),
            share,
            uuid=uuid,
            name=f"gpu{position}",
            profile=profile,
        )
        for position, (index, parent_uuid, uuid, share, profile) in enumerate(instances)
    ]


POWER_WINDOWS_S = ((r"\bGH200\b", 0.020), (r"\bA100\b", 0.025), (r"\bH100\b", 0.025))
"""(name pattern, s): how long each power value averages the load on the GPUs Yang, Adámek
and Armour measured ("Accurate and Convenient Energy Measurements for GPUs", SC'24;
arXiv:2312.02741): 25 ms of each 100 ms update on A100 and H100, 20 ms on GH200."""


def power_window_s(model: str | None) -> float | None:
    """How long a GPU's power value averages the load (s), where measured; else None."""
    name = (model or "").upper()
    return next((w for part, w in POWER_WINDOWS_S if re.search(part, name)), None)


def _enforced_power_limit_w(nvml: ModuleType, handle: Any) -> float | None:
    """The board's enforced power limit (W, ``nvmlDeviceGetEnforcedPowerLimit``), or None.

    It bounds what a load can draw where the sensor cannot see it (a loop locked to the
    updates of a part-time counter); a driver without it leaves the bound to the readings.
    """
    get = getattr(nvml, "nvmlDeviceGetEnforcedPowerLimit", None)
    if get is None:
        return None
    try:
        value = get(handle)
    except nvml.NVMLError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value) / 1000.0
