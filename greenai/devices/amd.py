"""AMD GPUs read through AMD SMI (the ``amdsmi`` Python package shipped with ROCm).

One :class:`AmdGPU` per device that AMD SMI lists: a whole GPU, or one GCD (graphics compute
die) of a dual-die MI250/MI250X, or one partition of an MI300X in a compute-partition mode.
The energy accumulator (``amdsmi_get_energy_count``: a count times its resolution in µJ)
is the backbone of the measurement where the GPU has it; socket power
(``amdsmi_get_power_info``, W) shapes the energy between two counter updates.
:func:`discover_amd_gpus` honours ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` and
returns an empty list, never an error, where ``amdsmi`` or the ``amdgpu`` driver is missing.

Devices are named ``amdgpu0``, ``amdgpu1``, ... so that they never collide with the NVIDIA
GPUs (``gpu0``, ...) on a host that has both.

Quirks handled (each from a report by people who measured it):

* MI200 parts report ``current_socket_power`` as ``"N/A"`` and only ``average_socket_power``;
  MI300 parts the other way round (ROCm/pytorch#1457, ml-energy/zeus#203). The current
  value is used where there is one, else the average one, which lags load changes.
* On an MI250/MI250X the driver reports the power of the whole card on its first GCD and
  0 W on the second (ml-energy/zeus#203, mlco2/codecarbon#1097); :meth:`AmdGPU.open` warns
  when a GCD of such a card reads 0 W.
* The energy counter has been reported wrong on some GPUs and ROCm versions
  (ROCm/amdsmi#38); compare it with integrated power on a first run (``greenai devices``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal

from greenai.devices.base import Reading
from greenai.devices.library import LibraryGPU
from greenai.errors import (
    DeviceError,
    DeviceReadError,
    DeviceUnavailableError,
    MeasurementWarning,
)

__all__ = ["AmdGPU", "amd_gpu_info", "discover_amd_gpus", "visible_amd_selectors"]

NAME_PREFIX = "amdgpu"
"""Device names are ``amdgpu0``, ``amdgpu1``, ...: never the NVIDIA GPUs' ``gpu0``."""

_NO_DRIVER_HINT = "the amdgpu kernel driver or ROCm's libamd_smi.so is not loaded"

# amdsmi_status_t values from amd_smi.h (a C ABI enum, stable across releases). The Python
# package raises AmdSmiLibraryException carrying one of these as get_error_code(). This is
# the one map from them to greenai errors, with what the user can do; codes not listed
# become DeviceError (DeviceReadError during read()).
_NOT_SUPPORTED = 2  # AMDSMI_STATUS_NOT_SUPPORTED
_NOT_YET_IMPLEMENTED = 3  # AMDSMI_STATUS_NOT_YET_IMPLEMENTED
_ERROR_MAP: dict[int, tuple[type[DeviceError], str]] = {
    4: (DeviceUnavailableError, _NO_DRIVER_HINT),  # AMDSMI_STATUS_FAIL_LOAD_MODULE
    5: (  # AMDSMI_STATUS_FAIL_LOAD_SYMBOL
        DeviceUnavailableError,
        "the amdsmi Python package is newer than ROCm's libamd_smi.so; install the amdsmi "
        "version that matches ROCm (e.g. /opt/rocm/share/amd_smi)",
    ),
    10: (  # AMDSMI_STATUS_NO_PERM
        DeviceError,
        "this user may not query the GPU; add it to the 'render' and 'video' groups "
        "(access to /dev/kfd and /dev/dri/renderD*)",
    ),
    18: (DeviceUnavailableError, _NO_DRIVER_HINT),  # AMDSMI_STATUS_INIT_ERROR
    31: (DeviceUnavailableError, "no AMD GPU found"),  # AMDSMI_STATUS_NOT_FOUND
    34: (DeviceUnavailableError, _NO_DRIVER_HINT),  # AMDSMI_STATUS_DRIVER_NOT_LOADED
}

_LEADING_DIGITS = re.compile(r"\d+")
PowerSource = Literal["current", "average"]
_POWER_KEYS: dict[PowerSource, str] = {
    "current": "current_socket_power",
    "average": "average_socket_power",
}
# Compute units per GCD tell the two parts apart where AMD SMI names both
# "AMD Instinct MI250X/MI250" (AMD Instinct MI250X and MI250 data sheets: 220 and 208 CUs
# per card, two GCDs each).
_MI250_BY_CUS = {110: "MI250X", 104: "MI250"}


def _code(err: BaseException) -> int | None:
    get = getattr(err, "get_error_code", None)
    try:
        return int(get()) if callable(get) else None
    except (TypeError, ValueError):
        return None


def _to_greenai_error(err: BaseException, context: str, *, read: bool = False) -> DeviceError:
    """Convert an AmdSmiException into the greenai error the user sees, with a hint."""
    cls, hint = _ERROR_MAP.get(_code(err) or -1, (DeviceError, ""))
    if read:
        cls = DeviceReadError
    return cls(f"{context}: AMD SMI error: {err}" + (f" ({hint})" if hint else ""))


def _is_unsupported(err: BaseException) -> bool:
    return _code(err) in (_NOT_SUPPORTED, _NOT_YET_IMPLEMENTED)


def _load_amdsmi() -> ModuleType:
    try:
        # amdsmi prints to stdout when libamd_smi.so is missing, and raises OSError,
        # AttributeError or KeyError (not only ImportError) on a ROCm it does not match.
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module("amdsmi")
    except Exception as err:
        raise DeviceUnavailableError(
            "AMD GPUs need the amdsmi package matching ROCm (pip install amdsmi, or "
            f"/opt/rocm/share/amd_smi): {type(err).__name__}: {err}"
        ) from err


def _watts(value: Any) -> float | None:
    """A socket power field in W, or None where AMD SMI says "N/A"."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _model(asic: Mapping[str, Any]) -> str:
    """The market name, with MI250X and MI250 told apart and marked as one GCD."""
    name = str(asic.get("market_name") or "AMD GPU")
    if "MI250" in name.upper():
        cus = asic.get("num_compute_units")
        part = _MI250_BY_CUS.get(cus) if isinstance(cus, int) else None
        name = f"AMD Instinct {part} (one GCD)" if part else f"{name} (one GCD)"
    return name


def _rocr_uuid(asic: Mapping[str, Any]) -> str:
    """The ``GPU-<serial>`` form ROCr uses in ROCR_VISIBLE_DEVICES (rocminfo's "Uuid")."""
    serial = str(asic.get("asic_serial") or "")
    return "GPU-" + serial.lower().removeprefix("0x") if serial and serial != "N/A" else ""


class AmdGPU(LibraryGPU):
    """One AMD GPU (or GCD, or partition), read through AMD SMI.

    Energy comes from the energy accumulator (``energy_accumulator × counter_resolution``
    µJ since the driver loaded) when the GPU has one (``method == "counter"``), otherwise
    from integrated socket power (``method == "power"``). ``method``,
    ``counter_resolution_j`` and ``relative_uncertainty`` are known only after
    :meth:`open`. AMD SMI's refresh periods are not measured here: ``update_period_s``
    assumes 100 ms, as on NVIDIA.

    Args:
        index: Position among the AMD GPUs visible to this process. The device is named
            ``f"amdgpu{index}"``.
        amdsmi: The amdsmi module, or a stand-in for tests; imported in :meth:`open` by
            default.
        name: Device name to use instead of ``f"amdgpu{index}"``.
        physical_index: Position in ``amdsmi_get_processor_handles()``; defaults to
            ``index``. Use :func:`discover_amd_gpus` to honour the visibility variables.
        uuid: The GPU's AMD SMI UUID, for display.
    """

    library = "AMD SMI"
    init_function = "amdsmi_init"
    shutdown_function = "amdsmi_shut_down"
    error_class = "AmdSmiException"
    _load = staticmethod(_load_amdsmi)
    physical_index: int
    _power: PowerSource | None

    def __init__(
        self,
        index: int,
        *,
        amdsmi: ModuleType | None = None,
        name: str | None = None,
        physical_index: int | None = None,
        uuid: str | None = None,
    ) -> None:
        super().__init__(
            index,
            module=amdsmi,
            name=name if name is not None else f"{NAME_PREFIX}{index}",
            physical_index=index if physical_index is None else physical_index,
            uuid=uuid,
        )

    @property
    def power_source(self) -> PowerSource | None:
        """The power field :meth:`open` chose: ``"current"``, ``"average"`` or None."""
        return self._power

    @staticmethod
    def _convert(
        module: ModuleType, err: Exception, context: str, *, read: bool = False
    ) -> DeviceError:
        return _to_greenai_error(err, context, read=read)

    def _probe(self, module: ModuleType) -> None:
        handles = module.amdsmi_get_processor_handles()
        if not 0 <= self.physical_index < len(handles):
            raise DeviceUnavailableError(
                f"{self.name}: AMD SMI lists {len(handles)} GPU(s), no index {self.physical_index}"
            )
        handle = handles[self.physical_index]
        self.model = _model(module.amdsmi_get_gpu_asic_info(handle))
        if self.uuid is None:
            self.uuid = str(module.amdsmi_get_gpu_device_uuid(handle))
        try:
            resolution_uj = float(module.amdsmi_get_energy_count(handle)["counter_resolution"])
        except module.AmdSmiException as err:
            if not _is_unsupported(err):
                raise
            resolution_uj = 0.0
        # A zero resolution would turn every count into 0 J: no usable counter then.
        self._has_counter = resolution_uj > 0
        if self._has_counter:
            self.counter_resolution_j = resolution_uj * 1e-6
        try:
            info = module.amdsmi_get_power_info(handle)
        except module.AmdSmiException as err:
            if not _is_unsupported(err):
                raise
            info = {}
        self._power = next(
            (s for s, k in _POWER_KEYS.items() if _watts(info.get(k)) is not None), None
        )
        if not self._has_counter and self._power is None:
            raise DeviceUnavailableError(
                f"{self.name} ({self.model}) reports neither an energy counter nor socket power"
            )
        if (
            "MI250" in self.model.upper()
            and self._power
            and _watts(info[_POWER_KEYS[self._power]]) == 0
        ):
            warnings.warn(
                f"{self.name} ({self.model}) reads 0 W: an MI250/MI250X reports the whole "
                "card's power on its first GCD and 0 W on the second. Measure with the "
                "first GCD visible; its figure covers both dies",
                MeasurementWarning,
                stacklevel=3,
            )
        self.method = "counter" if self._has_counter else "power"
        # An averaged power lags load changes (on NVIDIA's average: −6.9% over a 6 s burst).
        self.relative_uncertainty = 0.05 if self._power == "current" else 0.10
        self._handle = handle

    def read(self) -> Reading:
        """Read the energy accumulator (J) and socket power (W) as probed in :meth:`open`.

        Raises:
            DeviceReadError: The device is not open, AMD SMI failed on this read, or the
                power field it answered before now reads "N/A".
        """
        module = self._module
        if not self._open or module is None:
            raise DeviceReadError(f"{self.name}: read() before open()")
        energy_j = power_w = None
        try:
            if self._has_counter:
                count = module.amdsmi_get_energy_count(self._handle)
                energy_j = count["energy_accumulator"] * float(count["counter_resolution"]) * 1e-6
            if self._power is not None:
                power_w = _watts(
                    module.amdsmi_get_power_info(self._handle)[_POWER_KEYS[self._power]]
                )
                if power_w is None:
                    raise DeviceReadError(f"{self.name}: {_POWER_KEYS[self._power]} read N/A")
        except module.AmdSmiException as err:
            raise _to_greenai_error(err, f"{self.name}: read failed", read=True) from err
        return Reading(energy_j=energy_j, power_w=power_w)

    def detail(self) -> str:
        """Model, AMD SMI index, UUID and the sources used."""
        where = f"{self.model or 'AMD GPU'} (AMD SMI index {self.physical_index}, {self.uuid})"
        if not self._open and self.model is None:
            return f"{where}; not opened yet"
        energy = (
            f"energy accumulator ({self.counter_resolution_j * 1e6:g} µJ per count)"
            if self._has_counter
            else "integrated power"
        )
        power = {
            "current": "current_socket_power (W)",
            "average": "average_socket_power (W; an average that lags load changes)",
            None: "none",
        }[self._power]
        return f"{where}; energy: {energy}; power: {power}"


def _parse(value: str, *, uuids: bool) -> list[str | int]:
    """Entries of a visibility list: indices, and ``GPU-...`` UUIDs where allowed."""
    if value.strip() in ("", "-1"):
        return []
    selectors: list[str | int] = []
    for raw in value.split(","):
        entry = raw.strip()
        if uuids and entry.upper().startswith("GPU-"):
            selectors.append(entry)
            continue
        digits = _LEADING_DIGITS.match(entry)
        if digits is None:
            break
        selectors.append(int(digits.group()))
    return selectors


def visible_amd_selectors(
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str | int] | None, list[int] | None]:
    """Parse ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` the way ROCm applies them.

    ROCr applies ``ROCR_VISIBLE_DEVICES`` first (indices of all GPUs, or ``GPU-<serial>``
    UUIDs as ``rocminfo`` prints them); HIP then applies ``HIP_VISIBLE_DEVICES`` (indices
    into what ROCr left), or ``CUDA_VISIBLE_DEVICES`` when ``HIP_VISIBLE_DEVICES`` is unset,
    as HIP does on AMD (ROCm docs, "HIP environment variables"). ``""`` or ``"-1"`` hides
    every GPU; like CUDA, the first entry that is not a number (or UUID) ends the list.

    Args:
        environ: The environment to read; ``os.environ`` by default.

    Returns:
        ``(rocr, hip)``: each None when its variable is unset.
    """
    env = os.environ if environ is None else environ
    rocr_value = env.get("ROCR_VISIBLE_DEVICES")
    hip_value = env.get("HIP_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES"))
    rocr = None if rocr_value is None else _parse(rocr_value, uuids=True)
    hip = None
    if hip_value is not None:
        hip = [s for s in _parse(hip_value, uuids=False) if isinstance(s, int)]
    return rocr, hip


def _resolve(selectors: list[str | int], uuids: list[str]) -> list[int]:
    """Map selectors to positions in ``uuids``; an unknown entry ends the list."""
    chosen: list[int] = []
    for selector in selectors:
        if isinstance(selector, int):
            index = selector if selector < len(uuids) else -1
        else:
            matches = [
                i for i, u in enumerate(uuids) if u and u.lower().startswith(selector.lower())
            ]
            index = matches[0] if len(matches) == 1 else -1
        if index < 0:
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


def discover_amd_gpus(
    *, amdsmi: ModuleType | None = None, environ: Mapping[str, str] | None = None
) -> list[AmdGPU]:
    """Find the AMD GPUs this process can see, in ROCm's order.

    AMD SMI is initialised and shut down again here; the GPUs are returned not opened. The
    order is AMD SMI's, which is ROCr's on the machines we know of; UUIDs in
    ``ROCR_VISIBLE_DEVICES`` identify a GPU either way.

    Args:
        amdsmi: The amdsmi module, or a stand-in for tests; imported by default.
        environ: The environment to read the visibility variables from; ``os.environ`` by
            default.

    Returns:
        The visible GPUs, named amdgpu0, amdgpu1, ... by visible position. Empty when amdsmi
        or the driver is missing; empty with one
        :class:`~greenai.errors.DeviceFailureWarning` when AMD SMI fails otherwise.
    """
    rocr, hip = visible_amd_selectors(environ)
    if rocr == [] or hip == []:
        return []

    def listed(module: ModuleType) -> tuple[list[int], dict[int, str]]:
        handles = module.amdsmi_get_processor_handles()
        rocr_uuids = [_rocr_uuid(module.amdsmi_get_gpu_asic_info(h)) for h in handles]
        physical = list(range(len(handles))) if rocr is None else _resolve(rocr, rocr_uuids)
        if hip is not None:
            physical = [physical[i] for i in _resolve(list(hip), [""] * len(physical))]
        return physical, {i: str(module.amdsmi_get_gpu_device_uuid(handles[i])) for i in physical}

    found = AmdGPU.listing(amdsmi, "AMD GPUs", listed)
    if found is None:
        return []
    module, (physical, uuids) = found
    return [
        AmdGPU(position, amdsmi=module, physical_index=index, uuid=uuids[index])
        for position, index in enumerate(physical)
    ]


def amd_gpu_info(
    amdsmi: ModuleType | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The AMD GPUs of this machine (for its identity) and the amdgpu driver version.

    Every entry has ``"vendor": "amd"`` and a ``name`` of ``amdgpu<i>``, so that a mixed
    host's fingerprint tells its AMD GPUs from its NVIDIA ones. Never raises.

    Args:
        amdsmi: The amdsmi module (tests pass a fake); None imports it.

    Returns:
        ``(gpus, driver)``, each entry with ``index``, ``name``, ``model``, ``uuid``,
        ``vendor``; ``([], None)`` where there is no amdsmi or no driver.
    """
    try:
        module = amdsmi if amdsmi is not None else _load_amdsmi()
        module.amdsmi_init()
    except Exception:  # no package, no driver: not an AMD machine
        return [], None
    try:
        gpus: list[dict[str, Any]] = []
        driver = None
        for index, handle in enumerate(module.amdsmi_get_processor_handles()):
            if driver is None:
                driver = str(module.amdsmi_get_gpu_driver_info(handle)["driver_version"])
            gpus.append(
                {
                    "index": index,
                    "name": f"{NAME_PREFIX}{index}",
                    "model": _model(module.amdsmi_get_gpu_asic_info(handle)),
                    "uuid": str(module.amdsmi_get_gpu_device_uuid(handle)),
                    "vendor": "amd",
                }
            )
        return gpus, driver
    except Exception:
        return [], None
    finally:
        AmdGPU._shutdown_quietly(module)
