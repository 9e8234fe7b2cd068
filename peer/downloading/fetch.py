"""One Download stream from one peer into a .part, watched for stalls and cancellation: a
claim of pieces (peer.downloading.plan), each verified as it arrives, or a whole file without
a pieces root in order; and the piece layer from one peer (GetPieceLayer), checked against
the root before it is used.
"""

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

import grpc
from grpc_health.v1 import health_pb2
from napshare.common import merkle
from napshare.common.console import tr
from napshare.common.identity import ProofError, check_peer_certificate
from napshare.common.protocol import PEER_SERVICE
from napshare.common.ratelimit import TokenBucket
from napshare.common.tls import pinned_channel
from napshare.peer.downloading.partfile import PartFile, Spilled
from napshare.peer.downloading.pieces import BadLayerError, BadPieceError, PieceLayer
from napshare.peer.downloading.plan import Claim, Plan
from napshare.peer.errors import CancelledError, PeerError, PeerFault, peer_failure
from napshare.peer.reach.paths import Path
from napshare.peer.reach.routes import Routes
from napshare.peer.wire import Chunk, decode_response
from napshare.v1 import file_info_pb2, peer_pb2

logger = logging.getLogger(__name__)

DOWNLOAD = f"/{PEER_SERVICE}/Download"
GET_PIECE_LAYER = f"/{PEER_SERVICE}/GetPieceLayer"
# Only the type stubs make the classes generic.
Download: TypeAlias = "grpc.UnaryStreamMultiCallable[peer_pb2.DownloadRequest, Chunk]"
GetPieceLayer: TypeAlias = (
    "grpc.UnaryUnaryMultiCallable[peer_pb2.GetPieceLayerRequest, peer_pb2.GetPieceLayerResponse]"
)

# Chunks are at most 2 MiB, layers 512 KiB; leave room for the other fields and future sizes.
MAX_CHUNK_MESSAGE = 8 * 1024 * 1024
# No BDP probing: with it the window grew so far on a fast link that the client's RSS reached
# 200 MiB. gRPC's default stream window without it keeps the client near 70 MiB at the same
# speed, but lets about one 1 MiB message cross per round trip.
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", MAX_CHUNK_MESSAGE),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# So a long link is used at full speed, the stream window (`grpc.http2.lookahead_bytes`) of
# the channel that carries downloads is sized to the round trip a health check takes on the
# peer's other channel, already open: WINDOW_RATE bytes per second of round trip, at
# most MAX_WINDOW. Measured, a window gives about half of window / round trip: what holds one
# source over a long link is the window's refill, not the client's work (it keeps half a core
# busy there), so the rate is about twice what one source should reach. The client holds the
# window in memory only when it is slower than the link; MAX_WINDOW keeps that under 100 MiB
# of RSS (32 MiB reached 98 MiB). The streams of one download share the window, which is what
# the client can take in, not what one link carries: each gets the window / streams
# (MIN_WINDOW at least). 400 MB/s rather than 240 since the whole-file sha256 left the
# receiving path (tests/bench/NOTES.md). Round trips under MIN_WINDOW / WINDOW_RATE (5 ms)
# keep gRPC's default window: on loopback a large window only costs memory (16 MiB took a
# 1 GiB download from 69 to 120 MiB).
WINDOW_RATE = 400_000_000
MIN_WINDOW = 2 * 1024 * 1024
MAX_WINDOW = 24 * 1024 * 1024
ROUND_TRIP_PROBES = 1  # health checks timed on an open connection (each costs a round trip)
PACE_TICK = 0.05  # seconds between looks at the stop events while the download cap waits
# A piece arriving in more chunks than this is copied into one buffer instead of kept as the
# chunks' views: tiny chunks then cost a piece of memory, not an object per chunk (and a
# write stays within the kernel's limit on buffers per call).
MAX_VIEWS = 16
KEEP_AHEAD = 1  # whole pieces one stream may have received and not yet checked and written
# Pieces up to this size (those of files up to 64 GiB, common.merkle) are assembled in memory:
# a stream then holds at most KEEP_AHEAD + 2 of them. A larger piece goes, as it arrives, into
# a scratch file of the stream's own beside the part, hashed on the way; only once it matches
# its hash is it copied into the part. So a stream's memory is bounded whatever size a peer
# lists (a listing of 4 TiB has pieces of 256 MiB), and the part never holds unchecked bytes.
PIECE_BUFFER = 4 * 1024 * 1024
PROBE_TIMEOUT = 3.0  # seconds all the probes of one peer may take together
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def window_for(round_trip: float, streams: int = 1) -> int | None:
    """The stream window for a link with this round trip in seconds, when `streams` streams
    of one download share it; None for gRPC's default.
    """
    window = int(round_trip * WINDOW_RATE)
    if window < MIN_WINDOW:
        return None
    return max(MIN_WINDOW, min(window, MAX_WINDOW) // max(1, streams))


def _round_trip(channel: grpc.Channel, *, opened: bool) -> float | None:
    """The shortest of ROUND_TRIP_PROBES health-check round trips on `channel`, or None if
    they fail.

    Unless the channel has `opened` its connection with an earlier call, one more call opens
    it first and is not counted; all of them together take at most PROBE_TIMEOUT.
    """
    deadline = time.monotonic() + PROBE_TIMEOUT
    check = channel.unary_unary(
        _HEALTH_CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    request = health_pb2.HealthCheckRequest()
    times = []
    try:
        for probe in range(ROUND_TRIP_PROBES + (0 if opened else 1)):
            start = time.monotonic()
            check(request, timeout=max(0.001, deadline - start))
            if opened or probe:
                times.append(time.monotonic() - start)
    except grpc.RpcError as error:
        logger.debug("no round trip measured: %s", error.code())
        return None
    return min(times)


class PeerChannels:
    """Two channels per peer address, reused across streams and closed together: one with
    gRPC's default window for the small calls (GetPieceLayer, the health checks that time the
    round trip), and one for Download, with a window sized to that round trip (the same
    channel when the default suits it). The piece layer's call thus opens the connection the
    round trip is then timed on, and no call waits for a connection opened only to probe.

    Over TLS (not `plaintext`) each channel trusts only the certificate the tracker listed
    for that peer (`pin`), so a middleman can neither read the stream nor pose as the peer.

    With `routes`, a peer's channels dial what its route says (its address, a local one, or
    a loopback proxy to a reverse or relayed connection), chosen at its first channel; the
    pin is the same whatever the path.
    """

    def __init__(self, *, plaintext: bool = True, routes: Routes | None = None) -> None:
        self.plaintext = plaintext
        self.routes = routes
        self._reachable: dict[str, bool] = {}  # per peer: the tracker reached it at its id
        self._calls: dict[str, dict[int, Download]] = {}  # per peer, per stream
        self._layer_calls: dict[str, GetPieceLayer] = {}
        self._small: dict[str, grpc.Channel] = {}  # per peer: default window
        self._bulk: dict[str, dict[int, grpc.Channel]] = {}  # per peer, per stream: Download
        self._windows: dict[str, int | None] = {}  # per peer: its Download channels' window
        self._channels: list[grpc.Channel] = []
        self._certificates: dict[str, bytes] = {}
        self._names: dict[str, str] = {}  # per peer: the name it shares the file under
        # One lock per peer: its streams' threads ask for channels at once, and its round trip
        # is timed once, while other peers' are timed beside it.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.streams = 1  # how many streams of the download share MAX_WINDOW

    def pin(self, peer: str, certificate: bytes, *, reachable: bool = True, name: str = "") -> None:
        """Trust only `certificate` (DER, as the tracker lists it) for `peer` from now on;
        `reachable`: the tracker reached `peer` at its address (so it is dialled there first);
        `name`: the name `peer` shares the file under, when not the download's (a search by
        content found it).
        """
        with self._lock(peer):
            self._reachable[peer] = reachable
            if name:
                self._names[peer] = name
            if self._certificates.get(peer, certificate) != certificate:
                # A new identity at that address: new channels, pinned to it.
                for table in (self._calls, self._layer_calls, self._small, self._bulk):
                    table.pop(peer, None)
                self._windows.pop(peer, None)
            self._certificates[peer] = certificate

    def shared_name(self, peer: str, name: str) -> str:
        """The name to ask `peer` for the file the download calls `name`."""
        return self._names.get(peer, name)

    def download(self, peer: str, stream: int = 0) -> Download:
        """PeerService.Download on `peer` (`host:port`), answering with chunks decoded in place,
        on the channel of that peer's `stream` (each but the first on a connection of its own).

        The first time, the round trip to `peer` is timed to size the stream window (at most
        ROUND_TRIP_PROBES + 1 health checks, PROBE_TIMEOUT in all). The data of each chunk
        stays a view into the received message: one copy less than the generated stub's
        DownloadResponse. Raises PeerError (BROKEN) over TLS when `peer` has no usable
        certificate pinned.
        """
        with self._lock(peer):
            calls = self._calls.setdefault(peer, {})
            if stream not in calls:
                calls[stream] = self._bulk_channel(peer, stream).unary_stream(
                    DOWNLOAD,
                    request_serializer=peer_pb2.DownloadRequest.SerializeToString,
                    response_deserializer=decode_response,
                )
            return calls[stream]

    def piece_layer(self, peer: str) -> GetPieceLayer:
        """PeerService.GetPieceLayer on `peer`, on its channel for small calls."""
        with self._lock(peer):
            if peer not in self._layer_calls:
                self._layer_calls[peer] = self._small_channel(peer).unary_unary(
                    GET_PIECE_LAYER,
                    request_serializer=peer_pb2.GetPieceLayerRequest.SerializeToString,
                    response_deserializer=peer_pb2.GetPieceLayerResponse.FromString,
                )
            return self._layer_calls[peer]

    def _lock(self, peer: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(peer, threading.Lock())

    def _small_channel(self, peer: str) -> grpc.Channel:
        if peer not in self._small:
            self._small[peer] = self._new_channel(peer, CHANNEL_OPTIONS)
        return self._small[peer]

    def _bulk_channel(self, peer: str, stream: int) -> grpc.Channel:
        channels = self._bulk.setdefault(peer, {})
        if stream not in channels:
            window = self._window(peer)
            options = list(CHANNEL_OPTIONS)
            if window is not None:
                options.append(("grpc.http2.lookahead_bytes", window))
            if stream:
                options.append(("grpc.use_local_subchannel_pool", 1))  # a connection of its own
            if stream or window is not None:
                channels[stream] = self._new_channel(peer, options)
            else:
                channels[stream] = self._small_channel(peer)
        return channels[stream]

    def _window(self, peer: str) -> int | None:
        """The window of `peer`'s Download channels (None: gRPC's default), from its round trip
        timed on the channel for small calls.
        """
        if peer not in self._windows:
            opened = peer in self._layer_calls
            round_trip = _round_trip(self._small_channel(peer), opened=opened)
            window = None if round_trip is None else window_for(round_trip, self.streams)
            if round_trip is not None and window is not None:
                logger.debug(
                    "round trip to %s %.1f ms: window %d bytes", peer, round_trip * 1e3, window
                )
            self._windows[peer] = window
        return self._windows[peer]

    def paths(self, peers: Iterable[str]) -> Counter[str]:
        """How many of `peers` are reached by each path (Path values), as far as decided."""
        found: Counter[str] = Counter()
        for peer in peers:
            path = None if self.routes is None else self.routes.path_of(peer)
            found[(path or Path.DIRECT).value] += 1
        return found

    def _new_channel(self, peer: str, options: list[tuple[str, int | str]]) -> grpc.Channel:
        pem = None if self.plaintext else self._pinned_pem(peer)
        target = peer
        if self.routes is not None:
            route = self.routes.route(peer, reachable=self._reachable.get(peer, True))
            target = route.target
            if route.path in (Path.DIRECT, Path.LOCAL):  # the proxy counts the others
                self.routes.counts.add(route.path)
        if pem is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            channel = pinned_channel(target, pem, options)
        self._channels.append(channel)
        return channel

    def _pinned_pem(self, peer: str) -> bytes:
        certificate = self._certificates.get(peer, b"")
        if not certificate:
            raise PeerError(
                peer,
                PeerFault.BROKEN,
                "the tracker lists no certificate for it (it joined anonymously), so it cannot "
                "be reached over TLS",
            )
        try:
            return check_peer_certificate(certificate, time.time())
        except ProofError as error:
            raise PeerError(peer, PeerFault.BROKEN, f"its listed certificate: {error}") from None

    def close(self) -> None:
        """Close every channel."""
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        self._calls.clear()
        self._layer_calls.clear()
        self._small.clear()
        self._bulk.clear()
        self._windows.clear()


class StopReason(Enum):
    """Why a stream's watchdog cancelled its call."""

    STALLED = "no data came for the stall timeout"
    CANCELLED = "the download was cancelled"
    HALTED = "the engine stopped every stream"
    SUPERSEDED = "another stream took the claim over"


class _Watchdog:
    """Cancels a call when no data came for `stall_timeout` seconds, or when one of the events
    of `stops` is set; `reason` then says why.
    """

    def __init__(
        self,
        call: grpc.Call,
        stall_timeout: float,
        stops: Sequence[tuple[threading.Event | None, StopReason]],
    ) -> None:
        self.reason: StopReason | None = None
        self.last = time.monotonic()
        self._call = call
        self._stall_timeout = stall_timeout
        self._stops = stops
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def poll(self) -> bool:
        """Cancel the call now if a stop is set or the peer stalled; whether it did."""
        stopped = [reason for event, reason in self._stops if event and event.is_set()]
        if stopped:
            self.reason = stopped[0]
        elif time.monotonic() - self.last > self._stall_timeout:
            self.reason = StopReason.STALLED
        else:
            return False
        self._call.cancel()  # type: ignore[no-untyped-call]
        return True

    def _run(self) -> None:
        tick = min(0.2, self._stall_timeout / 4)
        while not self._done.wait(tick):
            if self.poll():
                return


@dataclass(frozen=True)
class Stream:
    """How one stream runs: its stall cut-off, the download's cancel event, the rate cap
    shared by every stream of the downloader, and where verified bytes are counted.
    """

    stall_timeout: float
    cancel: threading.Event | None = None
    rate: TokenBucket | None = None
    on_bytes: Callable[[str, int], None] = lambda _peer, _count: None  # kept, from whom
    halt: threading.Event | None = None  # the engine stops every stream (another one failed)
    on_data: Callable[[], None] = lambda: None  # bytes arrived (not yet checked)
    # Where a stream waits in its peer's upload queue: (peer, position, waiting, estimated
    # seconds, 0 when the peer cannot tell); position 0 once it no longer waits.
    on_queued: Callable[[str, int, int, int], None] = lambda _peer, _at, _of, _eta: None


def fetch_claim(
    download: Download,
    part: PartFile,
    plan: Plan,
    claim: Claim,
    how: Stream,
    *,
    name: str = "",
    wait: bool = False,
) -> None:
    """Stream `claim`'s pieces from its peer into `part`, each verified before it is kept;
    the peer is asked for the file by `name` (the part's name when ""), and with `wait` to
    queue the request when it is busy rather than refuse it.

    Returns when the claim is done: its pieces are in (from this stream or another), its end
    was taken by another stream, or it was superseded. Raises PeerError when the peer fails in
    any way (a bad piece: BROKEN, nothing of it kept), or CancelledError when `how.cancel` is
    set. Each whole piece is checked and written by a keeper thread while the next arrives.
    """
    peer = claim.peer
    layer = part.layer
    assert layer is not None
    offset = claim.start * layer.piece_size
    end = layer.end_of(claim.asked_end - 1)
    name = name or part.name
    request = peer_pb2.DownloadRequest(
        name=name, offset=offset, limit=end - offset, sha256=part.sha256, wait_for_slot=wait
    )
    call = download(request)
    place = _QueueWatch(peer, how)
    watchdog = _Watchdog(
        call,
        how.stall_timeout,
        (
            (how.cancel, StopReason.CANCELLED),
            (how.halt, StopReason.HALTED),
            (claim.superseded, StopReason.SUPERSEDED),
        ),
    )
    scratch = _Scratch(part) if layer.piece_size > PIECE_BUFFER else None
    keeper = _Keeper(part, plan, claim, how, call)
    position, index = offset, claim.start
    piece_end = layer.end_of(index)
    piece = _new_piece(part, index, scratch)
    stops = (how.cancel, how.halt, claim.superseded)
    first = True
    try:
        for chunk in call:
            if place.waits(chunk, watchdog, first=first):
                continue
            if first:
                _check_file(peer, part, chunk.file, name)
                first = False
            data = chunk.data
            if not data:
                continue  # not progress: a peer sending only empty messages stalls
            watchdog.last = time.monotonic()
            how.on_data()
            if chunk.offset != position or position + len(data) > end:
                raise PeerError(
                    peer,
                    PeerFault.BROKEN,
                    f"sent {len(data)} bytes at offset {chunk.offset}, "
                    f"expected offset {position} (bytes {offset}-{end - 1} were asked)",
                )
            view = memoryview(data)
            while view:
                take = min(len(view), piece_end - position)
                piece.add(view[:take])
                view = view[take:]
                position += take
                if position < piece_end:
                    continue
                if not keeper.keep(index, piece.whole()):
                    return
                index += 1
                if index >= claim.asked_end:
                    break  # all it asked for came: read on to the stream's end, its status
                if index >= claim.end:
                    return  # another stream took the rest
                piece_end = layer.end_of(index)
                piece = _new_piece(part, index, scratch)
            if how.rate is not None:
                _pace(how.rate, len(data), watchdog, stops)
    except grpc.RpcError as error:
        keeper.finish()
        if watchdog.reason is StopReason.SUPERSEDED or keeper.stopped or position == end:
            return  # superseded, the keeper ended the call, or every byte asked came
        raise _ended(error, watchdog, peer, part, how) from None
    finally:
        place.left()
        try:
            keeper.finish()
        finally:
            watchdog.stop()
            call.cancel()  # type: ignore[no-untyped-call]
            if scratch is not None:
                scratch.close()
    if claim.superseded.is_set() or keeper.stopped or position == end:
        return
    raise PeerError(peer, PeerFault.GONE, f"the stream ended at byte {position} of {end}")


def _new_piece(part: PartFile, index: int, scratch: "_Scratch | None") -> "_Piece | _SpilledPiece":
    """Where piece `index` is assembled as it arrives: memory, or a slot of `scratch`."""
    layer = part.layer
    assert layer is not None
    if scratch is None:
        return _Piece(layer.end_of(index) - index * layer.piece_size)
    return _SpilledPiece(scratch, index, layer.size, layer.piece_size)


class _Piece:
    """The bytes of one piece as they arrive: the chunks' own views, or, past MAX_VIEWS of
    them, one buffer they are copied into.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._views: list[memoryview] = []
        self._buffer: bytearray | None = None
        self._filled = 0

    def add(self, view: memoryview) -> None:
        if self._buffer is None and len(self._views) < MAX_VIEWS:
            self._views.append(view)
            return
        if self._buffer is None:
            self._buffer = bytearray(self._size)
            for held in self._views:
                self._copy(held)
            self._views = []
        self._copy(view)

    def _copy(self, view: memoryview) -> None:
        assert self._buffer is not None
        self._buffer[self._filled : self._filled + len(view)] = view
        self._filled += len(view)

    def whole(self) -> list[memoryview]:
        """The piece's bytes, in order."""
        if self._buffer is None:
            return self._views
        return [memoryview(self._buffer)[: self._filled]]


class _Scratch:
    """A stream's scratch file for large pieces (part.scratch(): unlinked, beside the part),
    in KEEP_AHEAD + 2 slots of one piece each, used in turn: the piece being received, those
    waiting for the keeper, and the one it copies. A slot comes round again only after the
    keeper took the piece two places later from its queue, so it is done with that slot.
    """

    SLOTS = KEEP_AHEAD + 2

    def __init__(self, part: PartFile) -> None:
        self.part = part
        self.fd = part.scratch()
        self._next = 0

    def slot(self, piece_size: int) -> int:
        """The offset of the next slot."""
        offset = self._next % self.SLOTS * piece_size
        self._next += 1
        return offset

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _SpilledPiece:
    """The bytes of one large piece as they arrive: written to a slot of the stream's scratch
    file and hashed on the way, so that memory holds only the chunk at hand.
    """

    def __init__(self, scratch: _Scratch, index: int, size: int, piece_size: int) -> None:
        self._scratch = scratch
        self._offset = scratch.slot(piece_size)
        self._tree = merkle.TreeBuilder(size, index * piece_size)
        self._filled = 0

    def add(self, view: memoryview) -> None:
        self._tree.update(view)
        self._scratch.part.write_scratch(self._scratch.fd, self._offset + self._filled, view)
        self._filled += len(view)

    def whole(self) -> Spilled:
        """Where the piece is, and its hash."""
        return Spilled(self._scratch.fd, self._offset, self._filled, self._tree.layer[0])


class _Keeper:
    """Checks and writes the whole pieces one stream received, in a thread of its own, so
    hashing and writing a piece overlap receiving the next (at most KEEP_AHEAD wait).

    A bad piece, or the end of the claim, stops it: `keep` then says no, and the call is
    cancelled so the receiving loop ends; `finish` (idempotent) waits for the pieces handed
    over and raises the bad piece's PeerError.
    """

    def __init__(
        self, part: PartFile, plan: Plan, claim: Claim, how: Stream, call: grpc.Call
    ) -> None:
        self.stopped = False  # the claim is done, or a piece was bad
        self._part, self._plan, self._claim, self._how, self._call = part, plan, claim, how, call
        self._error: BaseException | None = None  # a PeerError, or a folder problem
        self._queue: queue.Queue[tuple[int, list[memoryview] | Spilled] | None] = queue.Queue(
            KEEP_AHEAD
        )
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"keep-{claim.peer}", daemon=True
        )
        self._thread.start()

    def keep(self, index: int, piece: list[memoryview] | Spilled) -> bool:
        """Hand over piece `index`; False when nothing more is wanted from this stream (a bad
        piece raises PeerError).
        """
        if self._error is not None:
            self.finish()
        if self.stopped:
            return False
        self._queue.put((index, piece))
        return True

    def finish(self) -> None:
        """Wait for the pieces handed over; raise the PeerError of a bad one (or what else
        stopped the keeper)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.stopped:
                continue  # drain until finished
            try:
                self._keep(*item)
            except BaseException as error:  # a bad piece, or a folder problem: the stream's
                self._error = error
                self._stop()

    def _keep(self, index: int, piece: list[memoryview] | Spilled) -> None:
        layer = self._part.layer
        assert layer is not None
        peer = self._claim.peer
        try:
            kept = self._part.put_piece(index, piece)
        except BadPieceError as error:
            raise PeerError(peer, PeerFault.BROKEN, str(error)) from None
        if kept:
            if not self._claim.pieces:
                self._part.add_source(peer)
            self._how.on_bytes(peer, layer.end_of(index) - index * layer.piece_size)
        _, going_on = self._plan.advance(self._claim, index)
        if not going_on and self._claim.next < self._claim.asked_end:
            self._stop()  # the rest of what the stream asked for is not wanted any more

    def _stop(self) -> None:
        self.stopped = True
        self._call.cancel()  # type: ignore[no-untyped-call]


def fetch_in_order(
    download: Download,
    peer: str,
    part: PartFile,
    how: Stream,
    *,
    name: str = "",
    wait: bool = False,
) -> None:
    """Stream the rest of `part`'s file from `peer`, appending to it until it is complete:
    a file without a pieces root, which only its sha256 can tell good or bad. `peer` is asked
    for it by `name` (the part's name when ""); with `wait`, a busy peer is asked to queue the
    request rather than refuse it.

    Raises PeerError when the peer fails in any way, or CancelledError when `how.cancel` is
    set.
    """
    name = name or part.name
    request = peer_pb2.DownloadRequest(
        name=name, offset=part.have, sha256=part.sha256, wait_for_slot=wait
    )
    call = download(request)
    watchdog = _Watchdog(
        call,
        how.stall_timeout,
        ((how.cancel, StopReason.CANCELLED), (how.halt, StopReason.HALTED)),
    )
    place = _QueueWatch(peer, how)
    first = True
    try:
        for chunk in call:
            if place.waits(chunk, watchdog, first=first):
                continue
            if first:
                _check_file(peer, part, chunk.file, name)
                first = False
            data = chunk.data
            if not data:
                continue  # not progress: a peer sending only empty messages stalls
            watchdog.last = time.monotonic()
            how.on_data()
            if chunk.offset != part.have or part.have + len(data) > part.size:
                raise PeerError(
                    peer,
                    PeerFault.BROKEN,
                    f"sent {len(data)} bytes at offset {chunk.offset}, "
                    f"expected offset {part.have} of {part.size}",
                )
            if part.have == request.offset:
                part.add_source(peer)
            part.write(chunk.offset, data)
            how.on_bytes(peer, len(data))
            if how.rate is not None:
                _pace(how.rate, len(data), watchdog, (how.cancel, how.halt))
    except grpc.RpcError as error:
        raise _ended(error, watchdog, peer, part, how) from None
    finally:
        place.left()
        watchdog.stop()
        call.cancel()  # type: ignore[no-untyped-call]
    if part.have < part.size:
        raise PeerError(
            peer, PeerFault.GONE, f"the stream ended at byte {part.have} of {part.size}"
        )


class _QueueWatch:
    """Follows one stream's place in its peer's upload queue (DownloadResponse.queued) and
    tells `how.on_queued` of each; a place is not a stall, and never follows the file's data.
    """

    def __init__(self, peer: str, how: Stream) -> None:
        self._peer = peer
        self._how = how
        self.waiting = False

    def waits(self, chunk: Chunk, watchdog: "_Watchdog", *, first: bool) -> bool:
        """Whether `chunk` is a queue position (told on); PeerError (BROKEN) for one that
        comes after the file's data, or that is no position.
        """
        queued = chunk.queued
        if queued is None:
            self.left()
            return False
        if not first or chunk.data or chunk.file is not None:
            raise PeerError(self._peer, PeerFault.BROKEN, "sent a queue position with the file")
        if not 0 < queued.position <= queued.waiting:
            raise PeerError(
                self._peer,
                PeerFault.BROKEN,
                f"sent queue position {queued.position} of {queued.waiting}",
            )
        watchdog.last = time.monotonic()
        self.waiting = True
        self._how.on_queued(self._peer, queued.position, queued.waiting, queued.estimated_seconds)
        return True

    def left(self) -> None:
        """The stream no longer waits (its data came, or it ended)."""
        if self.waiting:
            self.waiting = False
            self._how.on_queued(self._peer, 0, 0, 0)


def _ended(
    error: grpc.RpcError, watchdog: _Watchdog, peer: str, part: PartFile, how: Stream
) -> Exception:
    """What a stream's failed call means: cancelled or halted by us, stalled, or the peer's
    own failure.
    """
    if watchdog.reason in (StopReason.CANCELLED, StopReason.HALTED):
        return CancelledError(tr("download of {name} cancelled", name=part.name))
    if watchdog.reason is StopReason.STALLED:
        return PeerError(peer, PeerFault.STALLED, f"no data for {how.stall_timeout:g} s")
    return peer_failure(peer, error)


def _pace(
    rate: TokenBucket,
    count: int,
    watchdog: _Watchdog,
    stops: Sequence[threading.Event | None],
) -> None:
    """Wait as long as the download cap says, or until one of `stops` is set: the watchdog
    then cancels the call at once, so the loop ends before it takes what the peer already
    sent at full speed; the wait is ours, not a stall of the peer.
    """
    delay = rate.reserve(count)
    if not delay:
        return
    watchdog.last = time.monotonic() + delay
    deadline = time.monotonic() + delay
    while (left := deadline - time.monotonic()) > 0:
        if any(stop is not None and stop.is_set() for stop in stops):
            watchdog.poll()
            return
        time.sleep(min(left, PACE_TICK))


def fetch_layer(
    get: GetPieceLayer,
    peer: str,
    part: PartFile,
    *,
    timeout: float,
    cancel: threading.Event | None = None,
    name: str = "",
) -> PieceLayer:
    """The piece layer of `part`'s file from `peer` (which calls it `name`, the part's name
    when ""), checked against the pieces root.

    Raises PeerError when the call fails, or BROKEN when the layer does not match the root;
    CancelledError as soon as `cancel` is set.
    """
    request = peer_pb2.GetPieceLayerRequest(name=name or part.name, sha256=part.sha256)
    future = get.future(request, timeout=timeout)
    done = threading.Event()
    future.add_done_callback(lambda _future: done.set())
    while not done.wait(PACE_TICK):
        if cancel is not None and cancel.is_set():
            future.cancel()  # type: ignore[no-untyped-call]
            raise CancelledError(tr("download of {name} cancelled", name=part.name))
    try:
        answer = future.result()
    except grpc.RpcError as error:
        raise peer_failure(peer, error) from None
    try:
        return PieceLayer.checked(part.size, part.pieces_root, answer.piece_size, answer.hashes)
    except BadLayerError as error:
        raise PeerError(peer, PeerFault.BROKEN, f"bad piece layer: {error}") from None


def _check_file(peer: str, part: PartFile, file: file_info_pb2.FileInfo | None, name: str) -> None:
    if file is None:
        return
    # Roots are compared only when both sides have one: a peer that computes none sends none
    # (its pieces are still checked), and a listing without one checks the sha256 only.
    roots_differ = (
        bool(file.pieces_root and part.pieces_root) and file.pieces_root != part.pieces_root
    )
    if (file.name, file.size, file.sha256) != (name, part.size, part.sha256) or roots_differ:
        raise PeerError(
            peer,
            PeerFault.CHANGED,
            f"it has {file.name!r} of {file.size} bytes with sha256 {file.sha256[:12]}…, "
            f"not {part.size} bytes with sha256 {part.sha256[:12]}…",
        )
