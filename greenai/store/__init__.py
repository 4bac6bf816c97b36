"""The embedded run store: runs, Measurements, timelines and phase spans in SQLite.

Example:
    >>> from greenai.store import RunStore
    >>> with RunStore() as store:  # doctest: +SKIP
    ...     run_id = store.start_run("train")
    ...     store.finish_run(run_id, job.result, timeline=job.timeline())
    ...     store.runs(limit=5)
"""

from greenai.store.errors import StoreError
from greenai.store.runstore import RunStore, StoredRun, default_path
from greenai.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "RunStore", "StoreError", "StoredRun", "default_path"]
