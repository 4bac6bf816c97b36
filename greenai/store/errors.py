"""The error the run store raises."""

from __future__ import annotations

from greenai.errors import GreenAIError

__all__ = ["StoreError"]


class StoreError(GreenAIError):
    """The run store cannot be opened, read or written, or has no such run."""
