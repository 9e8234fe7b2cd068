"""Upload slots: at most `max_uploads` downloads served at once, and stalled ones cut off."""

import logging
import threading
import time
from collections.abc import Callable

from napshare.common import reasons

logger = logging.getLogger(__name__)

# A refused downloader is told to wait as long as the youngest running upload has run: with
# nothing else known, an upload is as likely to be nearer its end as its start, so the soonest
# a slot frees is about that. Bounded, so that one long upload cannot keep clients away.
MIN_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0


class UploadsBusyError(Exception):
    """Every upload slot is taken: the original's "download refused".

    `retry_delay` is how many seconds the caller should wait before asking again.
    """

    reason = reasons.UPLOAD_SLOTS_FULL

    def __init__(self, message: str, retry_delay: float) -> None:
        super().__init__(message)
        self.retry_delay = retry_delay


class UploadSlot:
    """One upload slot, held from the request until the stream ends."""

    def __init__(self, slots: "UploadSlots", on_stall: Callable[[], None]) -> None:
        self._slots = slots
        self.on_stall = on_stall
        self.last_progress: float | None = None
        self.started = time.monotonic()
        self.released = False

    def progress(self) -> None:
        """The client took another chunk; from now on a long pause counts as a stall."""
        self.last_progress = time.monotonic()

    def release(self) -> None:
        """Give the slot back; calling it again does nothing."""
        self._slots._release(self)


class UploadSlots:
    """A counter of running uploads with a non-blocking acquire.

    With `stall_timeout`, a watcher thread (running only while uploads are) calls the
    `on_stall` of an upload whose client took no chunk for that many seconds, and frees its
    slot, so that clients that stop reading cannot hold every slot forever.
    """

    def __init__(self, max_uploads: int, stall_timeout: float | None = None) -> None:
        if max_uploads < 1:
            raise ValueError(f"max uploads must be at least 1, not {max_uploads}")
        if stall_timeout is not None and stall_timeout <= 0:
            raise ValueError(f"stall timeout must be positive, not {stall_timeout}")
        self.max_uploads = max_uploads
        self.stall_timeout = stall_timeout
        self._held: set[UploadSlot] = set()
        self._condition = threading.Condition()
        self._watching = False

    @property
    def in_use(self) -> int:
        """How many slots are held now."""
        with self._condition:
            return len(self._held)

    def acquire(self, on_stall: Callable[[], None] = lambda: None) -> UploadSlot:
        """Take a slot at once or raise UploadsBusyError; never waits."""
        with self._condition:
            if len(self._held) >= self.max_uploads:
                raise UploadsBusyError(
                    f"this peer is already serving {self.max_uploads} downloads; "
                    "try another peer or again later",
                    self._retry_delay_locked(),
                )
            slot = UploadSlot(self, on_stall)
            self._held.add(slot)
            if self.stall_timeout is not None and not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="upload-stall-watch", daemon=True).start()
            return slot

    def _retry_delay_locked(self) -> float:
        youngest = time.monotonic() - max(slot.started for slot in self._held)
        return min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, youngest))

    def _release(self, slot: UploadSlot) -> None:
        with self._condition:
            if slot.released:
                return
            slot.released = True
            self._held.discard(slot)
            self._condition.notify_all()

    def _watch(self) -> None:
        assert self.stall_timeout is not None
        timeout = self.stall_timeout
        interval = min(timeout / 4, 1.0)
        while True:
            with self._condition:
                if not self._held:
                    self._watching = False
                    return
                self._condition.wait(interval)
                now = time.monotonic()
                stalled = [
                    slot
                    for slot in self._held
                    if slot.last_progress is not None and now - slot.last_progress > timeout
                ]
            for slot in stalled:
                logger.warning("cutting off a download whose client took no data for %ss", timeout)
                slot.release()
                slot.on_stall()
