"""A tracker as a decorator: each call of the function is one tracked job."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from greenai.checks import is_sink_factory
from greenai.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["tracked"]


def tracked(fn: F, job: Callable[[], Any], sinks: Sequence[Any] = ()) -> F:
    """``fn`` run inside a fresh tracker ``job()`` per call.

    After each call the tracker's result (None if it never stopped) is ``fn.last_result``.
    Coroutine functions are tracked over the awaited body, generator functions over the
    whole iteration (not just the creation of the coroutine or generator).

    Raises:
        ConfigError: One of ``sinks`` (the tracker's) is an object, not a factory: it would
            serve every call, and a sink serves one job.
    """
    if any(not is_sink_factory(sink) for sink in sinks):
        raise ConfigError(
            "a decorated function starts a job per call, and a sink serves one job: give"
            " sinks as factories (sinks=[MySink], or sinks=[lambda: MySink(...)])"
        )

    def done(tracker: Any) -> None:
        kept = tracker.result if tracker.started and not tracker.running else None
        wrapper.last_result = kept  # type: ignore[attr-defined]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracker = job()
            try:
                with tracker:
                    return await fn(*args, **kwargs)
            finally:
                done(tracker)

    elif inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracker = job()
            try:
                with tracker:
                    return (yield from fn(*args, **kwargs))
            finally:
                done(tracker)

    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracker = job()
            try:
                with tracker:
                    return fn(*args, **kwargs)
            finally:
                done(tracker)

    wrapper.last_result = None  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
