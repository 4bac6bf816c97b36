"""``sync=``: the function a tracker calls before taking the time at each mark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["resolve_sync"]


def resolve_sync(option: bool | Callable[[], Any]) -> tuple[Callable[[], Any] | None, list[str]]:
    """The function ``sync=`` asks for (the user's, CUDA's, or None) and notes for the result.

    ``True`` means ``torch.cuda.synchronize``; where torch or a CUDA device is missing, no
    function and a note saying that marks are taken when Python reaches them.
    """
    if callable(option) and not isinstance(option, bool):
        return option, []
    if option is not True:
        return None, []
    try:
        import torch

        available = bool(torch.cuda.is_available())
    except Exception:  # no torch, or a CUDA install that fails to load
        available = False
    if not available:
        note = (
            "sync=True, but no CUDA device is available: step and phase marks are taken"
            " when Python reaches them"
        )
        return None, [note]
    cuda_sync: Callable[[], Any] = torch.cuda.synchronize
    return cuda_sync, []
