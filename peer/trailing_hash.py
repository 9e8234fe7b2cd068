"""A sha256 that follows a file being written: a thread reads back and hashes what is on disk."""

import functools
import hashlib
import os
import threading

READ_BUFFER = 4 * 1024 * 1024


class TrailingHash:
    """Hashes `fd` from offset 0 up to whatever the writer says is written, in its own thread.

    Receiving and hashing overlap (hashlib releases the GIL on large buffers), memory stays
    one buffer, and a resumed download hashes its existing prefix the same way.
    """

    def __init__(self, fd: int, written: int = 0) -> None:
        self._fd = fd
        self._written = written
        self._hashed = 0
        self._stopped = False
        self._error: OSError | None = None
        self._digest = hashlib.sha256()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="trailing-hash", daemon=True)
        self._thread.start()

    def advance(self, written: int) -> None:
        """Bytes [0, written) of the file are now final and may be hashed."""
        with self._cond:
            self._written = written
            self._cond.notify_all()

    def hexdigest(self, size: int) -> str:
        """Wait until the first `size` bytes are hashed and return the digest."""
        self.advance(size)
        with self._cond:
            self._cond.wait_for(lambda: self._hashed >= size or self._error is not None)
            if self._error is not None:
                raise self._error
            if self._hashed != size:
                raise OSError(f"hashed {self._hashed} bytes, expected {size}")
        return self._digest.hexdigest()

    def stop(self) -> None:
        """End the thread; idempotent."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    def _has_work(self, position: int) -> bool:
        return self._stopped or self._written > position

    def _run(self) -> None:
        view = memoryview(bytearray(READ_BUFFER))
        position = 0
        while True:
            with self._cond:
                self._cond.wait_for(functools.partial(self._has_work, position))
                if self._stopped:
                    return
                target = self._written
            try:
                while position < target:
                    count = os.preadv(
                        self._fd, [view[: min(READ_BUFFER, target - position)]], position
                    )
                    if count == 0:
                        raise OSError(f"the file ends at {position}, before {target}")
                    self._digest.update(view[:count])
                    position += count
            except OSError as error:
                with self._cond:
                    self._error = error
                    self._cond.notify_all()
                return
            with self._cond:
                self._hashed = position
                self._cond.notify_all()
