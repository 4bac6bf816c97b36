"""The live thread: settles a running job every few seconds and publishes its snapshots.

It knows nothing of trackers: it is given two plain callables, ``settle`` (fold what the
devices have settled into the running figures) and ``publish`` (take a snapshot and hand it
to the sinks; None when nobody reads snapshots).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from greenai.clock import Clock
from greenai.sinks import UPDATE_TIMEOUT_S, mark_background

__all__ = ["LiveThread"]

log = logging.getLogger("greenai")


class LiveThread:
    """Calls ``settle`` every :attr:`SETTLE_S` seconds and ``publish`` every ``checkpoint_s``.

    A settling pass costs about a millisecond per device whatever it settles (numpy's
    overhead on a short stretch), so passes come every :attr:`SETTLE_S` seconds, not on
    every tick: ``stop()`` then settles at most that much. A publish settles too.

    Args:
        clock: The job's clock (a FakeClock drives the thread in tests).
        checkpoint_s: Seconds between publishes.
        settle: Folds new readings into the running figures.
        publish: Takes a snapshot and gives it to the sinks; None: settle only.
    """

    SETTLE_S = 5.0

    def __init__(
        self,
        clock: Clock,
        checkpoint_s: float,
        *,
        settle: Callable[[], object],
        publish: Callable[[], object] | None,
    ) -> None:
        self._clock = clock
        self._checkpoint_s = checkpoint_s
        self._settle = settle
        self._publish = publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (named ``greenai-live``)."""
        self._clock.attach(self)
        self._thread = threading.Thread(target=self._run, name="greenai-live", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self._clock.detach(self)
            raise

    def _run(self) -> None:
        mark_background("the tracker's live thread")
        try:
            now = self._clock.now()
            settle_at = now + min(self.SETTLE_S, self._checkpoint_s)
            update_at = now + self._checkpoint_s
            while not self._clock.wait_until(self, min(settle_at, update_at), self._stop):
                now = self._clock.now()
                try:
                    if now >= update_at:
                        update_at = max(update_at + self._checkpoint_s, now)
                        (self._publish or self._settle)()
                    elif now >= settle_at:
                        self._settle()
                except Exception:  # never let a bug here touch the user's job
                    log.exception("greenai: live update failed")
                    update_at = max(update_at + self._checkpoint_s, now)
                if now >= settle_at:
                    settle_at = max(settle_at + self.SETTLE_S, now)
        finally:
            self._clock.detach(self)

    def stop(self) -> bool:
        """End the thread; False when a sink's update() kept it past the deadline."""
        if self._thread is None:
            return True
        self._stop.set()
        self._thread.join(UPDATE_TIMEOUT_S)
        stopped = not self._thread.is_alive()
        self._thread = None
        return stopped
