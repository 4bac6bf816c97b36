"""A tracked run's meta: the facts recorded with it, given up front or while it runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError

if TYPE_CHECKING:
    from greenai.run import ActiveRun

__all__ = ["RunFacts", "merged_meta"]


def merged_meta(meta: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``facts`` added (see :meth:`RunFacts.update_meta`).

    Raises:
        ConfigError: ``facts`` is not a dict of JSON-serialisable values.
    """
    if not isinstance(facts, dict):
        raise ConfigError(f"update_meta() takes a dict, got {type(facts).__name__}")
    try:
        json.dumps(facts, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"update_meta(): facts must be JSON values ({exc})") from None
    return {**meta, **facts}


class RunFacts:
    """The meta of :class:`greenai.Tracker` (its run's while it has one, else its own)."""

    _run: ActiveRun | None
    _meta: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        """Facts recorded with the run (``meta=``, plus a distributed job's size on rank 0)."""
        return dict(self._run.meta if self._run is not None else self._meta)

    def update_meta(self, facts: dict[str, Any]) -> None:
        """Add facts to the run's meta while it runs (a store records them at stop).

        For what is known only as the job goes (a callback's epoch figures); facts of the
        same name are replaced. Keep them small: the whole meta is one JSON record.

        Raises:
            ConfigError: ``facts`` is not a dict of JSON-serialisable values.
        """
        if self._run is not None:
            self._run.meta = merged_meta(self._run.meta, facts)
        else:
            self._meta = merged_meta(self._meta, facts)
