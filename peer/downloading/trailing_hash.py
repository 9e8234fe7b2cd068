"""A sha256 that follows a file being written, in its own thread, so hashing overlaps receiving."""

import contextlib
import hashlib
import os
import queue
import threading

READ_BUFFER = 1024 * 1024
QUEUE_CHUNKS = 4

_Item = tuple[int, memoryview | None] | None


class TrailingHash:
    """Hashes bytes [0, n) of the file `fd` in order, in a thread of its own.

    The writer hands each chunk over as soon as it is on disk (`feed`); the thread hashes
    it from memory. Whatever it was not handed, such as the part a resumed download starts
    with, or chunks dropped because it lagged behind, it reads back from the file. So the
    writer never waits, memory stays a few chunks, and hashlib runs beside the receiving
    (it releases the GIL on large buffers).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._hashed = 0
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[_Item] = queue.Queue(QUEUE_CHUNKS)
        self._error: OSError | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailing-hash", daemon=True)
        self._thread.start()

    @property
    def hashed(self) -> int:
        """How many bytes from the start it has hashed so far (it never reads them again)."""
        return self._hashed

    def feed(self, offset: int, data: memoryview) -> None:
        """`data`, now written at `offset`, may be hashed; every byte before it is written too."""
        with contextlib.suppress(queue.Full):  # when lagging, it reads them back later
            self._queue.put_nowait((offset, data))

    def hexdigest(self, size: int) -> str:
        """The digest of the first `size` bytes, once all are written. Call once."""
        self._queue.put((size, None))
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def stop(self) -> None:
        """End the thread; idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            offset, data = item
            if self._error is not None:
                continue  # drain until stopped
            try:
                if offset > self._hashed:
                    self._read_back(offset)
                if data is None:
                    self._done.set()
                    continue
                skip = self._hashed - offset
                if skip < len(data):
                    self._digest.update(data[skip:])
                    self._hashed = offset + len(data)
            except OSError as error:
                self._error = error
                self._done.set()

    def _read_back(self, end: int) -> None:
        view = memoryview(bytearray(min(READ_BUFFER, end - self._hashed)))
        while self._hashed < end:
            wanted = view[: min(len(view), end - self._hashed)]
            count = os.preadv(self._fd, [wanted], self._hashed)
            if count == 0:
                raise OSError(f"the file ends at byte {self._hashed}, before {end}")
            self._digest.update(wanted[:count])
            self._hashed += count
