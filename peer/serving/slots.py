"""Upload slots: at most `max_uploads` downloads at once, shared fairly, stalled ones cut off,
a queue of those that wait for a slot, served first come, first served, and a slot held a
moment for the client whose stream of a file just ended, for its next call on that file.
"""

import dataclasses
import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from napshare.common.addresskey import AddressKey
from napshare.peer.serving.errors import (
    TooManyUploadsError,
    UploadsBusyError,
    UploadTooSlowError,
)

logger = logging.getLogger(__name__)

# A refused downloader is told to wait as long as the youngest running upload has run: with
# nothing else known, an upload is as likely to be nearer its end as its start, so the soonest
# a slot frees is about that. Bounded, so that one long upload cannot keep clients away.
MIN_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0
MAX_ESTIMATE = 7 * 24 * 3600  # seconds: a longer estimate is no estimate


@dataclass(frozen=True)
class Fairness:
    """How the slots are shared among clients (the defaults are in peer.defaults).

    One address holds at most `per_address` slots; what one address is, `address_key` says
    (an IPv6 address counts per /64 by default: common.addresskey). From `grace` seconds
    after a slot is taken, a slot whose client took less than `min_rate` bytes per second
    over the last `window` seconds is reclaimed: its stream ends with UploadTooSlowError, and
    its address gets no new slot for one `window`, so that the freed slot goes to someone
    else. A reclaimed stream counts for its address until it ends.
    """

    per_address: int
    min_rate: float
    window: float
    grace: float
    address_key: AddressKey = field(default_factory=AddressKey)

    def __post_init__(self) -> None:
        if self.per_address < 1:
            raise ValueError(f"uploads per address must be at least 1, not {self.per_address}")
        if self.min_rate < 0:
            raise ValueError(f"minimum upload rate must not be negative, not {self.min_rate}")
        if self.window <= 0:
            raise ValueError(f"upload rate window must be positive, not {self.window}")
        if self.grace < 0:
            raise ValueError(f"upload grace must not be negative, not {self.grace}")

    def under_cap(self, upload_rate: float, max_uploads: int) -> "Fairness":
        """These rules for a peer whose uploads share a cap of `upload_rate` bytes/s (0: none).

        With every slot taken, each upload gets about upload_rate / max_uploads; a reader
        held below min_rate by our own cap is not slow, so min_rate becomes at most half of
        that share (half, for the unevenness of the turns the uploads take).
        """
        if not upload_rate:
            return self
        share = upload_rate / max_uploads / 2
        return dataclasses.replace(self, min_rate=min(self.min_rate, share))


class LeftQueueError(Exception):
    """The downloader went away while it waited in the queue."""


@dataclass(frozen=True)
class QueueLimits:
    """How many Downloads may wait for a slot: `most` in all, `per_address` from one address
    (the defaults are in peer.defaults; `most` 0: none wait, a busy peer refuses at once).
    """

    most: int
    per_address: int

    def __post_init__(self) -> None:
        if self.most < 0:
            raise ValueError(f"the upload queue must not be negative, not {self.most}")
        if self.per_address < 1:
            raise ValueError(f"queued per address must be at least 1, not {self.per_address}")


@dataclass(frozen=True)
class QueueReport:
    """Where a waiting Download stands: `position` 1 is next, `waiting` in all, and about how
    many seconds until it gets a slot (None: no upload has run long enough to tell).
    """

    position: int
    waiting: int
    estimate: int | None


class QueuePlace:
    """A Download waiting in the queue for an upload slot; it will send `size` bytes."""

    def __init__(
        self,
        slots: "UploadSlots",
        address: str,
        on_stall: Callable[[], None],
        size: int,
        holder: str = "",
    ) -> None:
        self._slots = slots
        self.address = address
        self.on_stall = on_stall
        self.size = size
        self.holder = holder
        self.slot: UploadSlot | None = None  # given when its turn comes
        self.left = False
        self._told = 0  # the position last reported

    def update(self, interval: float) -> QueueReport | None:
        """Wait until this place gets its slot (None), its position changes, or `interval`
        seconds pass (a fresh report). The first call reports at once. Raises LeftQueueError
        once the downloader left (`leave`).
        """
        return self._slots._update(self, interval)

    def leave(self) -> None:
        """The downloader went away: leave the queue at once (or free the slot just given);
        calling it again does nothing.
        """
        self._slots._leave(self)


class UploadSlot:
    """One upload slot, held from the request until the stream ends (and, with a hold, a
    moment after for the same client and file: UploadSlots).
    """

    def __init__(
        self,
        slots: "UploadSlots",
        address: str,
        on_stall: Callable[[], None],
        size: int = 0,
        holder: str = "",
    ) -> None:
        self._slots = slots
        self.address = address
        self.on_stall = on_stall
        # Bytes the slot will have sent when its stream ends (0: not known); on a slot held
        # across calls, what its earlier calls sent plus what this one sends.
        self.size = size
        # Who the slot is held for once its stream sent all it was asked for: the client's
        # connection and the file ("": nobody).
        self.holder = holder
        self.started = time.monotonic()
        self.last_progress = self.started
        self.bytes_sent = 0
        # (time, bytes_sent) as the watcher saw them, the oldest at most one window back.
        self.samples: deque[tuple[float, int]] = deque()
        self.reclaimed: UploadTooSlowError | None = None
        self.reclaimed_at = 0.0
        self.released = False
        self.finished = False  # its stream sent all it was asked for

    def sent(self, count: int) -> None:
        """gRPC took `count` more bytes: the client is reading."""
        self.bytes_sent += count
        self.last_progress = time.monotonic()

    def waiting(self, seconds: float) -> None:
        """Our own upload cap holds this upload for `seconds`: not a stall of its client."""
        self.last_progress = max(self.last_progress, time.monotonic() + seconds)

    def check(self) -> None:
        """Raise UploadTooSlowError if the slot was reclaimed, to end its stream."""
        if self.reclaimed is not None:
            raise self.reclaimed

    def finish(self) -> None:
        """Its stream sent the whole range asked for: once released, the slot is held for
        its holder for the slots' hold, in case the client asks for more of the file.
        """
        self.finished = True

    def release(self) -> None:
        """Give the slot back (or hold it, after finish); calling it again does nothing."""
        self._slots._release(self)


@dataclass
class _Hold:
    """A slot kept for a moment for the `holder` (a client's connection and a file) whose
    stream ended, counted for its `address`, with what its calls so far sent since `started`,
    so that the rate and age it has carry on.
    """

    address: str
    holder: str
    until: float
    started: float
    bytes_sent: int
    samples: deque[tuple[float, int]]


class UploadSlots:
    """A counter of running uploads with a non-blocking acquire, and a queue.

    With `stall_timeout`, a watcher thread (running only while uploads are) calls the
    `on_stall` of an upload whose client took no chunk for that many seconds, and frees its
    slot, so that clients that stop reading cannot hold every slot forever. With `fairness`,
    it also reclaims slots read too slowly, and acquire counts slots per address.

    With `queue`, a Download that asks to wait (acquire_or_wait) gets a place in the queue
    when every slot is taken: each slot freed goes to the first place in the queue whose
    address may have one (under its own limit of slots, not cooling off), never to a
    newcomer while one waits.

    With `hold` (seconds), a slot whose stream sent all it was asked for (UploadSlot.finish)
    is held that long for its holder (the same connection and file): a downloader fetching a
    file in several calls (ranges of it, one after the other) keeps its slot between them
    instead of losing it to the queue or to another client at each call's end. Once the hold
    ends unclaimed, the slot goes to the queue as any freed slot. A held slot never keeps out
    its own address's next request while nobody waits in the queue (the client went on to
    another file).
    """

    def __init__(
        self,
        max_uploads: int,
        stall_timeout: float | None = None,
        fairness: Fairness | None = None,
        queue: QueueLimits | None = None,
        hold: float = 0.0,
    ) -> None:
        if max_uploads < 1:
            raise ValueError(f"max uploads must be at least 1, not {max_uploads}")
        if stall_timeout is not None and stall_timeout <= 0:
            raise ValueError(f"stall timeout must be positive, not {stall_timeout}")
        if hold < 0:
            raise ValueError(f"upload slot hold must not be negative, not {hold}")
        self.max_uploads = max_uploads
        self.stall_timeout = stall_timeout
        self.fairness = fairness
        self.hold = hold
        self._holds: list[_Hold] = []  # counted in _held until taken again or ended
        # Streams not ended yet, reclaimed ones included: they still count for their address.
        self._open: set[UploadSlot] = set()
        self._held = 0  # those of _open not reclaimed
        self._cooling: dict[str, float] = {}  # address -> when it may have a slot again
        self.queue_limits = queue or QueueLimits(0, 1)
        self._queue: list[QueuePlace] = []  # first come first
        self._condition = threading.Condition()
        self._watching = False

    @property
    def in_use(self) -> int:
        """How many slots have a stream now (reclaimed ones not counted, nor those kept)."""
        with self._condition:
            return self._held - len(self._holds)

    @property
    def kept(self) -> int:
        """How many slots are kept now for a client whose call on a file ended (the hold)."""
        with self._condition:
            return len(self._holds)

    @property
    def waiting(self) -> int:
        """How many Downloads wait in the queue now."""
        with self._condition:
            return len(self._queue)

    def acquire(
        self,
        address: str = "",
        on_stall: Callable[[], None] = lambda: None,
        size: int = 0,
        holder: str = "",
    ) -> UploadSlot:
        """Take a slot for a client at `address` (its IP; with fairness, counted under its
        address key) to send `size` bytes, at once, or raise SlotRefusedError. A slot held
        for `holder` is taken first.
        """
        if self.fairness is not None:
            address = self.fairness.address_key(address)
        with self._condition:
            now = time.monotonic()
            resumed = self._resume_locked(address, holder, on_stall, size, now)
            if resumed is not None:
                return resumed
            self._yield_holds_locked(address)
            if self.fairness is not None:
                self._refuse_address_locked(address, self.fairness, now)
            self._grant_locked(now)  # a place in the queue that may have a slot now goes first
            if self._held >= self.max_uploads:
                raise UploadsBusyError(
                    f"this peer is already serving {self.max_uploads} downloads; "
                    "try another peer or again later",
                    self._retry_delay_locked(self._ages_locked(), now),
                )
            return self._take_locked(address, on_stall, size, holder)

    def acquire_or_wait(
        self,
        address: str = "",
        on_stall: Callable[[], None] = lambda: None,
        size: int = 0,
        holder: str = "",
    ) -> UploadSlot | QueuePlace:
        """A slot for a client at `address` at once (one held for `holder` first), else
        a place in the queue; raises SlotRefusedError when the address may have no slot (as
        acquire) or the queue has no room for it (UploadsBusyError when full,
        TooManyUploadsError when its address has as many places as one address may).
        """
        if self.fairness is not None:
            address = self.fairness.address_key(address)
        with self._condition:
            now = time.monotonic()
            resumed = self._resume_locked(address, holder, on_stall, size, now)
            if resumed is not None:
                return resumed
            self._yield_holds_locked(address)
            if self.fairness is not None:
                self._refuse_address_locked(address, self.fairness, now)
            self._grant_locked(now)
            if self._held < self.max_uploads:
                return self._take_locked(address, on_stall, size, holder)
            limits = self.queue_limits
            own = sum(1 for place in self._queue if place.address == address)
            if own >= limits.per_address:
                raise TooManyUploadsError(
                    f"{address} already has {own} downloads waiting for this peer, the most "
                    "one address may have; try again when one starts",
                    self._retry_delay_locked(self._ages_locked(), now),
                )
            if len(self._queue) >= limits.most:
                queue = f" and {limits.most} more wait" if limits.most else ""
                raise UploadsBusyError(
                    f"this peer is already serving {self.max_uploads} downloads{queue}; "
                    "try another peer or again later",
                    self._retry_delay_locked(self._ages_locked(), now),
                )
            place = QueuePlace(self, address, on_stall, size, holder)
            self._queue.append(place)
            self._condition.notify_all()
            return place

    def _take_locked(
        self, address: str, on_stall: Callable[[], None], size: int, holder: str
    ) -> UploadSlot:
        slot = UploadSlot(self, address, on_stall, size, holder)
        self._open.add(slot)
        self._held += 1
        if self.stall_timeout is not None or self.fairness is not None:
            self._watch_locked()
        return slot

    def _watch_locked(self) -> None:
        if not self._watching:
            self._watching = True
            threading.Thread(target=self._watch, name="upload-slot-watch", daemon=True).start()

    def _resume_locked(
        self, address: str, holder: str, on_stall: Callable[[], None], size: int, now: float
    ) -> UploadSlot | None:
        """The slot held for `holder`, taken again for `size` more bytes, if any."""
        self._end_holds_locked(now)
        if not holder:
            return None
        for hold in self._holds:
            if hold.holder == holder and hold.address == address:
                self._holds.remove(hold)
                slot = UploadSlot(self, address, on_stall, hold.bytes_sent + size, holder)
                slot.started = hold.started
                slot.bytes_sent = hold.bytes_sent
                slot.samples = hold.samples
                self._open.add(slot)  # _held still counts it
                if self.stall_timeout is not None or self.fairness is not None:
                    self._watch_locked()
                return slot
        return None

    def _yield_holds_locked(self, address: str) -> None:
        """End the holds of `address` that would keep its new request out (a new download
        from the same client, as its last one's streams ended), unless others wait in the
        queue: they go first, as for any slot.
        """
        if self._queue:
            return
        own = [hold for hold in self._holds if hold.address == address]
        per_address = self.fairness.per_address if self.fairness is not None else None
        while own and (
            self._held >= self.max_uploads
            or (per_address is not None and len(self._ages_locked(address)) >= per_address)
        ):
            self._holds.remove(own.pop(0))
            self._held -= 1

    def _end_holds_locked(self, now: float) -> None:
        """Free the slots whose hold ended unclaimed (to the queue first)."""
        ended = [hold for hold in self._holds if hold.until <= now]
        if not ended:
            return
        for hold in ended:
            self._holds.remove(hold)
            self._held -= 1
        self._grant_locked(now)
        self._condition.notify_all()

    def _ages_locked(self, address: str | None = None) -> list[float]:
        """When each slot taken now (of `address`, or of all) was taken: its streams, reclaimed
        ones too until they end, and the slots kept for it.
        """
        taken: list[UploadSlot | _Hold] = [*self._open, *self._holds]
        return [t.started for t in taken if address is None or t.address == address]

    def _grant_locked(self, now: float) -> None:
        """Give the free slots to the first places in the queue that may have one."""
        if not self._queue or self._held >= self.max_uploads:
            return
        fairness = self.fairness
        if fairness is not None:
            self._cooling = {key: until for key, until in self._cooling.items() if until > now}
        granted = False
        for place in list(self._queue):
            if self._held >= self.max_uploads:
                break
            if fairness is not None:
                if place.address in self._cooling:
                    continue
                if len(self._ages_locked(place.address)) >= fairness.per_address:
                    continue
            self._queue.remove(place)
            place.slot = self._take_locked(place.address, place.on_stall, place.size, place.holder)
            granted = True
        if granted:
            self._condition.notify_all()

    def _update(self, place: QueuePlace, interval: float) -> QueueReport | None:
        with self._condition:
            deadline = time.monotonic() + interval
            while True:
                now = time.monotonic()
                self._end_holds_locked(now)
                self._grant_locked(now)
                if place.left:
                    raise LeftQueueError
                if place.slot is not None:
                    return None
                position = self._queue.index(place) + 1
                if position != place._told or now >= deadline:
                    place._told = position
                    estimate = self._estimate_locked(place, now)
                    return QueueReport(position, len(self._queue), estimate)
                self._condition.wait(deadline - now)

    def _leave(self, place: QueuePlace) -> None:
        with self._condition:
            if place.left:
                return
            place.left = True
            if place in self._queue:
                self._queue.remove(place)
            self._condition.notify_all()
        if place.slot is not None:
            place.slot.release()

    def _estimate_locked(self, place: QueuePlace, now: float) -> int | None:
        """About how many seconds until `place` gets a slot: the running uploads end at their
        own rates, then each place ahead of it sends its bytes at their average rate.
        """
        held = [slot for slot in self._open if slot.reclaimed is None]
        rates = {
            slot: slot.bytes_sent / (now - slot.started)
            for slot in held
            if slot.bytes_sent and now - slot.started >= 1.0
        }
        if not rates:
            return None
        average = sum(rates.values()) / len(rates)
        free = [
            max(0, slot.size - slot.bytes_sent) / rates.get(slot, average)
            for slot in held
            if slot.size
        ]
        free += [0.0] * (self.max_uploads - len(free))
        heapq.heapify(free)
        for ahead in self._queue:
            when = heapq.heappop(free)
            if ahead is place:
                return max(1, min(MAX_ESTIMATE, round(when)))
            heapq.heappush(free, when + ahead.size / average)
        return None

    def _refuse_address_locked(self, address: str, fairness: Fairness, now: float) -> None:
        self._cooling = {key: until for key, until in self._cooling.items() if until > now}
        until = self._cooling.get(address)
        if until is not None:
            raise UploadTooSlowError(
                f"a download from {address} read too slowly (under {_rate(fairness.min_rate)}); "
                "try another peer or again later",
                max(MIN_RETRY_DELAY, until - now),
            )
        ages = self._ages_locked(address)
        if len(ages) >= fairness.per_address:
            raise TooManyUploadsError(
                f"{address} already has {len(ages)} downloads from this peer, the most one "
                "address may have; try again when one ends",
                self._retry_delay_locked(ages, now),
            )

    @staticmethod
    def _retry_delay_locked(ages: list[float], now: float) -> float:
        youngest = now - max(ages)
        return min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, youngest))

    def _release(self, slot: UploadSlot) -> None:
        with self._condition:
            if slot.released:
                return
            slot.released = True
            self._open.discard(slot)
            now = time.monotonic()
            if slot.reclaimed is None and slot.finished and slot.holder and self.hold > 0:
                self._holds.append(
                    _Hold(
                        slot.address,
                        slot.holder,
                        now + self.hold,
                        slot.started,
                        slot.bytes_sent,
                        slot.samples,
                    )
                )
                self._watch_locked()  # it ends the hold if nobody takes the slot again
                return
            if slot.reclaimed is None:
                self._held -= 1
            self._grant_locked(now)
            self._condition.notify_all()

    def _reclaim_locked(self, slot: UploadSlot, fairness: Fairness, now: float) -> None:
        slot.reclaimed = UploadTooSlowError(
            f"this download was read at under {_rate(fairness.min_rate)} for "
            f"{fairness.window:g} s; its slot went to another downloader. "
            "Try another peer or again later",
            fairness.window,
        )
        slot.reclaimed_at = now
        self._held -= 1
        self._cooling[slot.address] = now + fairness.window
        self._grant_locked(now)
        self._condition.notify_all()

    def _watch(self) -> None:
        periods = [p for p in (self.stall_timeout, self.fairness and self.fairness.window) if p]
        interval = min(min(periods) / 4, 1.0) if periods else 1.0
        while True:
            with self._condition:
                if not self._open and not self._holds:
                    self._watching = False
                    return
                wait = interval
                if self._holds:
                    soonest = min(hold.until for hold in self._holds)
                    wait = max(0.0, min(wait, soonest - time.monotonic()))
                self._condition.wait(wait)
                now = time.monotonic()
                self._end_holds_locked(now)
                cut = self._check_locked(now)
            for slot, why in cut:
                logger.warning("cutting off a download to %s: %s", slot.address or "?", why)
                slot.release()
                slot.on_stall()

    def _check_locked(self, now: float) -> list[tuple[UploadSlot, str]]:
        """Reclaim slow slots; return the streams to cut off now, with why."""
        cut: list[tuple[UploadSlot, str]] = []
        fairness = self.fairness
        for slot in list(self._open):
            if slot.reclaimed is not None:
                # Its stream ends with UploadTooSlowError, after the data already queued,
                # once gRPC takes one more chunk; one whose client reads nothing more within
                # the stall timeout (or a window, without one) is cancelled.
                assert fairness is not None
                if now - slot.reclaimed_at > (self.stall_timeout or fairness.window):
                    cut.append((slot, "reclaimed for reading too slowly, and still not read"))
                continue
            if self.stall_timeout is not None and now - slot.last_progress > self.stall_timeout:
                cut.append((slot, f"its client took no data for {self.stall_timeout:g} s"))
                continue
            started = fairness is not None and now - slot.started >= fairness.grace
            if fairness is not None and started and self._too_slow(slot, fairness, now):
                logger.warning(
                    "reclaiming the upload slot of %s: under %s for %g s",
                    slot.address or "?",
                    _rate(fairness.min_rate),
                    fairness.window,
                )
                self._reclaim_locked(slot, fairness, now)
        return cut

    @staticmethod
    def _too_slow(slot: UploadSlot, fairness: Fairness, now: float) -> bool:
        samples = slot.samples
        if not samples or now - samples[-1][0] >= fairness.window / 8:
            samples.append((now, slot.bytes_sent))
        while len(samples) > 1 and samples[1][0] <= now - fairness.window:
            samples.popleft()
        since, sent_then = samples[0]
        if now - since < fairness.window:
            return False
        return slot.bytes_sent - sent_then < fairness.min_rate * (now - since)


def _rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 1024:g} KiB/s"
