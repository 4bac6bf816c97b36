"""The run store: runs, Measurements, timelines, phase spans and tags.

One SQLite file by default; a PostgreSQL database shared by a fleet with a
``postgresql://`` URL (``GREENAI_STORE``, ``--store``, ``store=``). Both share one SQL layer.

Example:
    >>> from greenai.store import RunStore
    >>> with RunStore() as store:  # doctest: +SKIP
    ...     run_id = store.start_run("train", tags={"team": "vision"})
    ...     store.finish_run(run_id, job.result, timeline=job.timeline())
    ...     store.runs(limit=5)
"""

from greenai.store.errors import StoreAccessError, StoreError, StoreUnavailableError
from greenai.store.runstore import RunStore, StoredRun, default_path, default_store
from greenai.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "RunStore",
    "StoreAccessError",
    "StoreError",
    "StoreUnavailableError",
    "StoredRun",
    "default_path",
    "default_store",
]
