"""The errors the run store raises."""

from __future__ import annotations

from greenai.errors import GreenAIError

__all__ = ["StoreAccessError", "StoreError", "StoreUnavailableError"]


class StoreError(GreenAIError):
    """The run store cannot be opened, read or written, or has no such run."""


class StoreAccessError(StoreError):
    """The database server refused the store's credentials, role or database name."""


class StoreUnavailableError(StoreError):
    """The database server cannot be reached (down, network, timeout): worth retrying later."""
