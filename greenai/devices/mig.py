"""MIG instances: a slice of an NVIDIA GPU, charged an estimated share of the whole GPU.

NVML reports power and energy only for a whole GPU, never for one MIG instance. A job that
sees only its instance (``CUDA_VISIBLE_DEVICES=MIG-…``, as Kubernetes' device plugin hands
them out) is charged the parent GPU's energy times the instance's share of the GPU's
streaming multiprocessors (``nvmlDeviceGetAttributes``: 3g.40gb on an H100 is 60 of 132
SMs). That share is a convention, not a measurement: the GPU's idle draw and its memory are
split by SMs too, and another instance's load lands partly on this one's figure. So a
:class:`MigInstance` says ``method == "model"`` (an estimate) and carries a wide relative
uncertainty (:data:`MIG_RELATIVE_UNCERTAINTY`), whatever the parent's counter.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from greenai.devices.base import Device, Reading
from greenai.errors import DeviceError

__all__ = ["MIG_RELATIVE_UNCERTAINTY", "MigInstance", "find_mig_instance", "sm_share"]

MIG_RELATIVE_UNCERTAINTY = 0.5
"""About 95% relative uncertainty of a MIG instance's share: a static SM split of a whole
GPU's draw, which other instances' load moves by tens of percent (the same width as the CPU
model's, for the same reason: an apportioning rule, not a reading)."""

# The old selector form MIG-GPU-<parent uuid>/<GPU instance id>/<compute instance id>.
_OLD_FORM = re.compile(r"^MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)$")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sm_share(nvml: ModuleType, parent: Any, mig: Any) -> float:
    """The MIG instance's share (0-1] of its parent GPU's streaming multiprocessors.

    Raises:
        DeviceError: NVML gives no SM counts for either handle.
    """
    try:
        ours = int(nvml.nvmlDeviceGetAttributes(mig).multiprocessorCount)
        whole = int(nvml.nvmlDeviceGetAttributes(parent).multiprocessorCount)
    except nvml.NVMLError as err:
        raise DeviceError(f"NVML gives no SM counts for the MIG instance: {err}") from err
    if ours <= 0 or whole <= 0 or ours > whole:
        raise DeviceError(f"NVML gives {ours} of {whole} SMs for the MIG instance")
    return ours / whole


def find_mig_instance(
    nvml: ModuleType, parents: list[Any], selector: str
) -> tuple[int, Any, str] | None:
    """Find the MIG instance ``selector`` names among the parent GPUs' handles.

    ``selector`` is ``MIG-<uuid>`` (a prefix is enough, as for CUDA) or the old
    ``MIG-GPU-<parent uuid>/<GPU instance>/<compute instance>``.

    Returns:
        (the parent's index in ``parents``, the instance's handle, its UUID), or None.
    """
    old = _OLD_FORM.match(selector)
    for index, parent in enumerate(parents):
        if old is not None and not _text(nvml.nvmlDeviceGetUUID(parent)).startswith(old[1]):
            continue
        try:
            count = int(nvml.nvmlDeviceGetMaxMigDeviceCount(parent))
        except nvml.NVMLError:
            continue  # not a MIG-capable GPU
        for slot in range(count):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
            except nvml.NVMLError:
                continue  # an empty slot
            uuid = _text(nvml.nvmlDeviceGetUUID(mig))
            if old is not None:
                if int(nvml.nvmlDeviceGetGpuInstanceId(mig)) == int(old[2]) and int(
                    nvml.nvmlDeviceGetComputeInstanceId(mig)
                ) == int(old[3]):
                    return index, mig, uuid
            elif uuid.startswith(selector):
                return index, mig, uuid
    return None


class MigInstance(Device):
    """One MIG instance, charged its SM share of the parent GPU's readings (an estimate).

    Args:
        parent: The parent GPU's device (an :class:`~greenai.devices.nvidia.NvidiaGPU`).
        share: The instance's share of the parent's SMs (:func:`sm_share`), in (0, 1].
        uuid: The instance's ``MIG-…`` UUID.
        name: The device's name (by visible position: ``gpu0``).
        profile: How the share was found, for :meth:`detail` (``60 of 132 SMs``).
    """

    kind = "gpu"
    method = "model"
    relative_uncertainty = MIG_RELATIVE_UNCERTAINTY

    def __init__(self, parent: Device, share: float, *, uuid: str, name: str, profile: str) -> None:
        if not 0.0 < share <= 1.0:
            raise DeviceError(f"a MIG instance's share must be in (0, 1], got {share!r}")
        self.parent = parent
        self.share = share
        self.uuid = uuid
        self.name = name
        self.profile = profile
        self.update_period_s = parent.update_period_s
        self.may_hang = parent.may_hang

    @property
    def power_limit_w(self) -> float | None:  # type: ignore[override]
        """The parent's power limit times the share (W; known after open), as its readings."""
        limit = self.parent.power_limit_w
        return None if limit is None else limit * self.share

    @property
    def power_window_s(self) -> float | None:  # type: ignore[override]
        """How long the parent's power values average (s; known after open)."""
        return self.parent.power_window_s

    def open(self) -> None:
        """Open the parent GPU.

        Raises:
            DeviceError: The parent cannot be opened.
        """
        self.parent.open()

    def read(self) -> Reading:
        """The parent's reading times the share.

        Raises:
            DeviceReadError: The parent's read failed.
        """
        r = self.parent.read()
        return Reading(
            energy_j=None if r.energy_j is None else r.energy_j * self.share,
            power_w=None if r.power_w is None else r.power_w * self.share,
        )

    def close(self) -> None:
        """Close the parent GPU. Never raises."""
        self.parent.close()

    def detail(self) -> str:
        """The instance, its share and the parent it is estimated from."""
        return (
            f"MIG instance {self.uuid}: estimated as {self.profile} ({self.share:.0%}) of"
            f" {self.parent.detail()}"
        )
