"""Serving one Download: check the request, take an upload slot, stream the byte range."""

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from napshare.common import merkle, reasons
from napshare.common.names import check_file_name, check_sha256
from napshare.common.ratelimit import TokenBucket
from napshare.peer.defaults import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from napshare.peer.folder.store import SharedFile, SharedFolder
from napshare.peer.serving.errors import BadRequestError, FileChangedError, OutOfRangeError
from napshare.peer.serving.slots import QueuePlace, UploadSlot, UploadSlots
from napshare.peer.wire import ChunkBuffer, file_field

# Under an upload cap a chunk is at most this many seconds of the cap, so that the uploads
# sharing it take turns in small steps rather than waiting seconds for each other's chunks.
PACE_SECONDS = 0.25


def check_chunk_size(chunk_size: int) -> int:
    """Return `chunk_size` if it is within MIN_CHUNK_SIZE..MAX_CHUNK_SIZE, else raise ValueError."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(
            f"chunk size {chunk_size} must be between {MIN_CHUNK_SIZE} "
            f"and {MAX_CHUNK_SIZE} bytes (16 KiB and 2 MiB)"
        )
    return chunk_size


def paced_chunk_size(chunk_size: int, rate: float) -> int:
    """The chunk size under an upload cap of `rate` bytes per second (0: no cap)."""
    if not rate:
        return chunk_size
    return min(chunk_size, max(MIN_CHUNK_SIZE, int(rate * PACE_SECONDS)))


@dataclass(frozen=True)
class DownloadSpec:
    """What a Download request asks for, as the protocol defines its fields."""

    name: str
    offset: int = 0
    limit: int = 0
    sha256: str = ""

    def check(self) -> "DownloadSpec":
        """Raise InvalidNameError, BadRequestError or OutOfRangeError for a request never valid."""
        check_file_name(self.name)
        if self.limit < 0:
            raise BadRequestError(f"limit {self.limit} is negative; use 0 for the whole file")
        if self.sha256:
            check_sha256(self.sha256)
        if self.offset < 0:
            raise OutOfRangeError(f"offset {self.offset} is negative", reasons.OFFSET_NEGATIVE)
        return self


class UploadTally:
    """How many transfers are open and how many file bytes they handed to gRPC, for metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.bytes_served = 0

    def opened(self) -> None:
        """One more transfer is open."""
        with self._lock:
            self.active += 1

    def served(self, count: int) -> None:
        """`count` more bytes of a file went out."""
        with self._lock:
            self.bytes_served += count

    def closed(self) -> None:
        """One transfer fewer is open."""
        with self._lock:
            self.active -= 1


class Transfer:
    """One running upload: an open file, the byte range to send, and the slot it holds."""

    def __init__(
        self,
        fd: int,
        info: SharedFile,
        start: int,
        end: int,
        slot: UploadSlot,
        *,
        tally: UploadTally,
        rate: TokenBucket,
    ) -> None:
        self.fd = fd
        self.info = info
        self.start = start
        self.end = end
        self._slot = slot
        self._tally = tally
        self._rate = rate
        self._closed = False
        tally.opened()

    def messages(self, chunk_size: int) -> Iterator[bytes]:
        """Serialized DownloadResponses: full chunks, a shorter last one, `file` on the first."""
        buffer = ChunkBuffer(chunk_size)
        info = self.info
        file = file_field(info.name, info.size, info.sha256, info.pieces_root)
        position = self.start
        while True:
            wanted = min(chunk_size, self.end - position)
            self._pace(wanted)
            got = buffer.read(self.fd, position, wanted)
            if got < wanted:
                raise FileChangedError(f"file {self.info.name!r} shrank while being sent")
            yield buffer.message(position, got, file)
            # gRPC took the message: a slow reader shows as a long wait in that yield.
            self._slot.sent(got)
            self._tally.served(got)
            file = b""
            position += got
            if position >= self.end:
                self._slot.finish()  # the client may come back for more of this file
                return
            self._slot.check()

    def _pace(self, count: int) -> None:
        """Wait until the peer's upload cap lets `count` more bytes go out."""
        delay = self._rate.reserve(count)
        if delay:
            self._slot.waiting(delay)
            time.sleep(delay)
            self._slot.check()

    def release_slot(self) -> None:
        """Free the upload slot (the stream ended or the client went away); idempotent."""
        self._slot.release()

    def close(self) -> None:
        """Free the slot and close the file; idempotent."""
        self._slot.release()
        if not self._closed:
            self._closed = True
            self._tally.closed()
            os.close(self.fd)


class Waiting:
    """A checked Download waiting in the queue for a slot, its file open: `place` says where
    it stands; `transfer()` starts it once the place got its slot. `close()` (idempotent)
    closes the file unless a transfer took it.
    """

    def __init__(
        self,
        uploads: "Uploads",
        fd: int,
        info: SharedFile,
        *,
        start: int,
        end: int,
        place: QueuePlace,
    ) -> None:
        self._uploads = uploads
        self._fd = fd
        self._info = info
        self._start = start
        self._end = end
        self.place = place

    def transfer(self) -> Transfer:
        """The transfer, on the slot the place was given."""
        slot = self.place.slot
        assert slot is not None, "a place that has no slot yet"
        fd, self._fd = self._fd, -1
        return self._uploads._transfer(fd, self._info, self._start, self._end, slot)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Uploads:
    """Starts transfers from one shared folder, within the upload slots and the upload cap.

    `limit` is one bucket for the whole peer: every upload takes its bytes from it, so the
    cap holds for all of them together (TokenBucket(0), the default, is no cap).
    """

    def __init__(
        self,
        folder: SharedFolder,
        slots: UploadSlots,
        chunk_size: int,
        rate: TokenBucket | None = None,
    ) -> None:
        self.folder = folder
        self.slots = slots
        self.rate = rate or TokenBucket(0)
        self.chunk_size = paced_chunk_size(check_chunk_size(chunk_size), self.rate.rate)
        self.tally = UploadTally()

    def start(
        self,
        spec: DownloadSpec,
        address: str,
        on_stall: Callable[[], None],
        connection: str = "",
    ) -> Transfer:
        """Check `spec`, take a slot for the client at `address` (its IP), open the file.
        A slot this `connection` was held for this file (UploadSlots' hold) is its own again.

        Raises a domain error if it cannot be served.
        """
        spec = _normal(spec)
        slot = self.slots.acquire(address, on_stall, holder=_holder(connection, spec.name))
        try:
            fd, info = self.folder.open(spec.name)
        except BaseException:
            slot.release()
            raise
        try:
            end = _range_end(spec, info)
        except BaseException:
            slot.release()
            os.close(fd)
            raise
        slot.size += end - spec.offset  # a slot held across calls counts what they sent
        return self._transfer(fd, info, spec.offset, end, slot)

    def start_or_wait(
        self,
        spec: DownloadSpec,
        address: str,
        on_stall: Callable[[], None],
        connection: str = "",
    ) -> Transfer | Waiting:
        """Check `spec` and open the file, then take a slot for the client at `address` (one
        held for this `connection` and file first), or a place in the queue when every slot
        is taken.

        Raises a domain error if it cannot be served, or cannot wait (the queue is full).
        """
        spec = _normal(spec)
        fd, info = self.folder.open(spec.name)
        try:
            end = _range_end(spec, info)
            holder = _holder(connection, spec.name)
            ticket = self.slots.acquire_or_wait(address, on_stall, end - spec.offset, holder)
        except BaseException:
            os.close(fd)
            raise
        if isinstance(ticket, QueuePlace):
            return Waiting(self, fd, info, start=spec.offset, end=end, place=ticket)
        return self._transfer(fd, info, spec.offset, end, ticket)

    def _transfer(
        self, fd: int, info: SharedFile, start: int, end: int, slot: UploadSlot
    ) -> Transfer:
        return Transfer(fd, info, start, end, slot, tally=self.tally, rate=self.rate)

    def piece_layer(self, name: str, sha256: str) -> tuple[int, bytes]:
        """The piece size and piece layer of the shared file `name` (napshare.common.merkle),
        which must have this sha256 if one is given. Takes no slot. Raises a domain error.
        """
        check_file_name(name)
        sha256 = sha256.lower()
        if sha256:
            check_sha256(sha256)
        info, layer = self.folder.piece_layer(name)
        if sha256 and sha256 != info.sha256:
            raise FileChangedError(
                f"file {name!r} changed: its sha256 is not the one requested; search again"
            )
        return merkle.piece_size_for(info.size), layer


def _holder(connection: str, name: str) -> str:
    """Who a slot is held for after its stream: one client connection (gRPC's peer string,
    which has no spaces) and one file; "" (nobody) without a connection.
    """
    return f"{connection} {name}" if connection else ""


def _normal(spec: DownloadSpec) -> DownloadSpec:
    """`spec` checked, its sha256 lowercased: InvalidNameError, BadRequestError or
    OutOfRangeError for a request never valid.
    """
    return DownloadSpec(spec.name, spec.offset, spec.limit, spec.sha256.lower()).check()


def _range_end(spec: DownloadSpec, info: SharedFile) -> int:
    """Where the range `spec` asks for ends in the file `info`, or FileChangedError (another
    sha256) or OutOfRangeError (an offset past the end).
    """
    if spec.sha256 and spec.sha256 != info.sha256:
        raise FileChangedError(
            f"file {spec.name!r} changed: its sha256 is not the one requested; search again"
        )
    if spec.offset > info.size:
        raise OutOfRangeError(
            f"offset {spec.offset} is past the end of {spec.name!r} ({info.size} bytes)",
            reasons.OFFSET_PAST_END,
        )
    return info.size if spec.limit == 0 else min(info.size, spec.offset + spec.limit)
