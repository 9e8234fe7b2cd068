"""The tracker's calls as plain Python: Join, Search (every page), Update, Heartbeat, Leave,
and the calls that reach peers behind NATs: Listen (the serving side's stream) and Connect.
"""

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from napshare.common import error_details, reasons
from napshare.common.address import (
    InvalidAddressError,
    address_list,
    normal_address,
    parse_address,
)
from napshare.common.console import tr
from napshare.common.identity import (
    JOIN_NONCE_BYTES,
    MAX_CERTIFICATE_BYTES,
    Identity,
    join_digest,
    join_message,
)
from napshare.common.names import InvalidNameError, check_file_name, check_folder, check_sha256
from napshare.common.protocol import MAX_PAGE_SIZE
from napshare.common.tls import pinned_channel, speaks_tls
from napshare.peer.defaults import MAX_RESULTS, SEARCH_TIME
from napshare.peer.errors import (
    ClientError,
    NotFoundError,
    TrackerUnreachableError,
    connect_refused,
    tracker_error,
)
from napshare.peer.folder.store import SharedFile
from napshare.peer.transport import PLAINTEXT, Transport, pinned_fingerprint, tracker_certificate
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

logger = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # the largest tracker answer this client takes
# With defaults.MAX_RESULTS, this bounds a search however a hostile tracker pages: it cannot
# make the client loop forever. It leaves room for short pages.
MAX_PAGES = 2 * MAX_RESULTS // MAX_PAGE_SIZE
BUSY_RETRIES = 3  # times a search the tracker refused as busy (SEARCHES_BUSY) is asked again
MAX_BUSY_WAIT = 5.0  # seconds waited before each, whatever the tracker's RetryInfo asks
CANCEL_POLL = 0.1  # seconds between looks at a search's cancel event while a page is awaited

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound=Message)
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One peer that shares one file, as the tracker lists it."""

    peer: str
    name: str
    size: int
    sha256: str
    certificate: bytes = b""  # the peer's (DER), to pin; empty for an anonymous peer
    pieces_root: str = ""  # hex; "" when the file is empty or the peer computes none
    reachable: bool = False  # the tracker reached the peer at its address when it joined


@dataclass(frozen=True)
class Found:
    """The sources a search returned, and whether more matched than they hold."""

    sources: list[Source]
    more: bool  # more matched: the limit asked for, or the client's caps, cut the list
    capped: bool  # the caps (MAX_RESULTS, MAX_PAGES, the time) did the cutting, not the limit
    gathering: bool = False  # the tracker started recently: peers may still be re-joining
    timed_out: bool = False  # the search's time ran out before the tracker's last page
    stopped: bool = False  # the search was cancelled before the tracker's last page


@dataclass(frozen=True)
class ConnectAnswer:
    """What Connect returned: the peer's local addresses (the caller shares its public
    address), whether it was asked to dial, and the caller's half of that dial.
    """

    local_addresses: tuple[str, ...]
    dialing: bool
    session: bytes = b""  # reverse: the 16 bytes the peer sends first
    secret: bytes = b""  # reverse: the 32-byte secret both sides prove
    relay_address: str = ""  # relay: host:port (an empty host: the tracker's)
    relay_ticket: bytes = b""  # relay: this side's serialized SignedRelayTicket
    behind_nat: bool = False  # reverse: a NAT would drop a dial to the caller; none was asked


class Listening:
    """A Listen call: iterate for its events (a ClientError when it fails), cancel to end it."""

    def __init__(
        self,
        client: "TrackerClient",
        events: Iterable[tracker_pb2.ListenResponse],
        cancel: Callable[[], object],
    ) -> None:
        self._client = client
        self._address = client.address  # the replica that holds the stream
        self._events = events
        self._cancel = cancel

    def __iter__(self) -> Iterator[tracker_pb2.ListenResponse]:
        try:
            yield from self._events
        except grpc.RpcError as error:
            failure = self._client._failure(error)
            if isinstance(failure, TrackerUnreachableError):
                self._client._next_replica(self._address)  # the stream opens again elsewhere
            raise failure from None

    def cancel(self) -> None:
        """End the call (iteration then ends with a ClientError)."""
        self._cancel()


@dataclass(frozen=True)
class Registration:
    """What Join returned: who we are to the tracker, and how often to say we are alive."""

    peer_id: str
    token: str
    heartbeat_interval: float
    reachable: bool = False  # the tracker reached this peer's PeerService at its address


def sign_join(
    request: tracker_pb2.JoinRequest,
    identity: Identity,
    tracker: str,
    *,
    signed_at: int | None = None,
) -> tracker_pb2.JoinRequest:
    """Sign `request` (its host, port, files and local addresses set) as `identity`, for the
    tracker whose identity is `tracker` ("" when it serves plain text), now (or at
    `signed_at`), with a fresh nonce; returns it.
    """
    request.certificate = identity.certificate_der
    request.signed_at = int(time.time()) if signed_at is None else signed_at
    request.nonce = secrets.token_bytes(JOIN_NONCE_BYTES)
    request.signature = identity.sign(
        join_message(
            tracker,
            request.host,
            request.port,
            request.signed_at,
            nonce=request.nonce,
            digest=join_digest(request.files, request.local_addresses),
        )
    )
    return request


def _infos(files: Iterable[SharedFile]) -> list[file_info_pb2.FileInfo]:
    return [
        file_info_pb2.FileInfo(name=f.name, size=f.size, sha256=f.sha256, pieces_root=f.pieces_root)
        for f in files
    ]


_CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
    ("grpc.max_send_message_length", MAX_ANSWER_BYTES),
    # Come back quickly after the tracker restarts.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # A connection of this client's own, so that reconnect() really dials a new one.
    ("grpc.use_local_subchannel_pool", 1),
]


class TrackerClient:
    """Channels to a tracker; every method raises a napshare.peer.errors.ClientError on failure.

    `address` is one `host:port` (a DNS name may stand for several replicas: gRPC tries its
    addresses in turn), or several replicas' separated by commas: a call that finds one
    unreachable (or without its store) goes to the next, which is then used until it fails.
    Over TLS (`transport` not plain text) every channel trusts only the one pinned
    certificate, so all replicas must show the same identity; when the pin has to be fetched
    (trust on first use), the first call fetches it from the first replica that answers.
    Raises common.address.InvalidAddressError at construction for a malformed address.
    """

    def __init__(
        self, address: str, *, timeout: float = CALL_TIMEOUT, transport: Transport = PLAINTEXT
    ) -> None:
        self.addresses = address_list(address)
        self._current = 0
        self.transport = transport
        self._timeout = timeout
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, tracker_pb2_grpc.TrackerServiceStub] = {}
        self._certificate: bytes | None = None  # the pinned one (PEM), once fetched
        self._watchers: list[Callable[[grpc.ChannelConnectivity], None]] = []
        self.tracker_identity = ""  # the pinned certificate's fingerprint; "" in plain text
        if transport.plaintext:
            self._connected()

    @property
    def address(self) -> str:
        """The tracker (replica) this client talks to now."""
        return self.addresses[self._current]

    @property
    def plaintext(self) -> bool:
        """Whether this client, and the peer using it, talk plain text (--plaintext)."""
        return self.transport.plaintext

    def join(
        self,
        host: str,
        port: int,
        files: Iterable[SharedFile],
        *,
        identity: Identity | None = None,
        local_addresses: Iterable[str] = (),
    ) -> Registration:
        """Register this peer's address and files (JOIN -> JOIN_OK), as `identity` if given
        (else anonymously): the Join carries its certificate and a signature for this tracker.
        `local_addresses` (`ip:port`) are where peers behind the same NAT reach it.
        """
        request = tracker_pb2.JoinRequest(
            host=host, port=port, files=_infos(files), local_addresses=local_addresses
        )
        self._failing_over(self._connected)  # the pin, before signing for it
        if identity is not None:
            sign_join(request, identity, self.tracker_identity)
        reply = self._call(lambda stub: stub.Join, request)
        return Registration(
            reply.peer_id,
            reply.token,
            float(reply.heartbeat_interval_seconds),
            reply.reachable,
        )

    def search(self, name: str, *, asker: str = "") -> list[Source]:
        """Every peer sharing a file named exactly `name` (an empty list when none)."""
        return self.lookup(name, asker=asker).sources

    def lookup(
        self,
        name: str,
        *,
        asker: str = "",
        cancel: threading.Event | None = None,
        seconds: float | None = None,
    ) -> Found:
        """Every peer sharing a file named exactly `name`, and whether the tracker is gathering
        (see `find` for `cancel` and `seconds`).
        """
        found = self.find(name=name, asker=asker, cancel=cancel, seconds=seconds)
        self._warn_if_more(found)
        return found

    def sharing(
        self,
        sha256: str = "",
        pieces_root: str = "",
        *,
        asker: str = "",
        cancel: threading.Event | None = None,
        seconds: float | None = None,
    ) -> Found:
        """Every peer sharing a file with these bytes (`sha256`, or else `pieces_root`), under
        whatever name each gave it (see `find` for `cancel` and `seconds`).
        """
        found = self.find(
            sha256=sha256,
            pieces_root="" if sha256 else pieces_root,
            asker=asker,
            cancel=cancel,
            seconds=seconds,
        )
        self._warn_if_more(found)
        return found

    def query(self, words: str, *, asker: str = "") -> list[Source]:
        """Every (peer, file) whose file name holds all the `words`, ignoring case."""
        found = self.find(query=words, asker=asker)
        self._warn_if_more(found)
        return found.sources

    def find(
        self,
        *,
        name: str = "",
        query: str = "",
        sha256: str = "",
        pieces_root: str = "",
        limit: int = 0,
        asker: str = "",
        cancel: threading.Event | None = None,
        seconds: float | None = None,
    ) -> Found:
        """The first `limit` matches of an exact `name`, of `query`'s words, or of the content
        `sha256` or `pieces_root` (lowercase hex), page by page.

        `limit` 0 means every match; either way at most MAX_RESULTS, in at most MAX_PAGES calls
        and SEARCH_TIME seconds (or `seconds`, if shorter): past that, what came so far
        (`timed_out`). Setting `cancel` ends it too, within CANCEL_POLL (`stopped`).
        """
        wanted = min(limit, MAX_RESULTS) if limit > 0 else MAX_RESULTS
        capped = not 0 < limit <= MAX_RESULTS
        patience = min(SEARCH_TIME, seconds or SEARCH_TIME)
        deadline = time.monotonic() + patience
        sources: list[Source] = []
        token = ""
        gathering = False
        for _ in range(MAX_PAGES):
            request = tracker_pb2.SearchRequest(
                name=name,
                query=query,
                sha256=sha256,
                pieces_root=pieces_root,
                peer_id=asker,
                page_size=min(MAX_PAGE_SIZE, wanted - len(sources)),
                page_token=token,
            )
            try:
                reply = self._search(request, deadline, cancel)
            except _OutOfTimeError:
                if not sources and not token:
                    raise _out_of_time(self.address, patience) from None
                return Found(sources, True, True, gathering, timed_out=True)
            if reply is None:
                return Found(sources, True, True, gathering, stopped=True)
            gathering = gathering or reply.gathering
            room = wanted - len(sources)
            sources += _checked(
                reply.results[:room], name, self.address, sha256=sha256, pieces_root=pieces_root
            )
            token = reply.next_page_token
            more = bool(token) or reply.truncated or len(reply.results) > room
            if not token or len(sources) >= wanted:
                return Found(sources, more, more and capped, gathering)
        return Found(sources, True, True, gathering)

    def browse(self, peer: str, folder: str = "") -> Iterator[list[Source]]:
        """The files `peer` shares under `folder` ("": all), page by page, in name order.

        At most MAX_RESULTS files in at most MAX_PAGES calls, whatever the tracker answers;
        files that are malformed, outside the folder or out of order are dropped (and said
        once in the log). Raises NotFoundError when the tracker has no such peer,
        InvalidNameError for a bad folder, or another ClientError.
        """
        prefix = check_folder(folder)
        token, count, last = "", 0, ""
        for _ in range(MAX_PAGES):
            request = tracker_pb2.BrowseRequest(
                peer_id=peer, folder=prefix, page_size=MAX_PAGE_SIZE, page_token=token
            )
            reply = self._failing_over(functools.partial(self._browse_here, peer, request))
            files = _listed(reply, peer, prefix, last, self.address)[: MAX_RESULTS - count]
            if files:
                last = files[-1].name
            count += len(files)
            yield files
            token = reply.next_page_token
            if not token or count >= MAX_RESULTS:
                return
        logger.warning(
            "tracker %s listed more than %d pages of %s's files; stopped there",
            self.address,
            MAX_PAGES,
            peer,
        )

    def _browse_here(
        self, peer: str, request: tracker_pb2.BrowseRequest
    ) -> tracker_pb2.BrowseResponse:
        try:
            return self._connected().Browse(request, timeout=self._timeout)
        except grpc.RpcError as error:
            found = error_details.read(error)
            if found is not None and found.reason == reasons.PEER_NOT_REGISTERED:
                raise NotFoundError(
                    tr(
                        "tracker {tracker} has no peer {peer} (it left, its lease ran out, "
                        "or it never joined)",
                        tracker=self.address,
                        peer=peer,
                    )
                ) from None
            raise self._failure(error) from None

    def update(
        self,
        registration: Registration,
        files: Iterable[SharedFile],
        removed_names: Iterable[str] = (),
    ) -> None:
        """Add or refresh `files` and withdraw `removed_names` in this peer's registration."""
        request = tracker_pb2.UpdateRequest(
            peer_id=registration.peer_id,
            token=registration.token,
            files=_infos(files),
            removed_names=removed_names,
        )
        self._call(lambda stub: stub.Update, request)

    def heartbeat(self, registration: Registration) -> None:
        """Renew this peer's lease."""
        request = tracker_pb2.HeartbeatRequest(
            peer_id=registration.peer_id, token=registration.token
        )
        self._call(lambda stub: stub.Heartbeat, request)

    def leave(self, registration: Registration) -> None:
        """Remove this peer and its files from the index."""
        request = tracker_pb2.LeaveRequest(peer_id=registration.peer_id, token=registration.token)
        self._call(lambda stub: stub.Leave, request)

    def listen(self, registration: Registration) -> Listening:
        """Open this peer's Listen stream: the tracker's requests to dial out."""
        request = tracker_pb2.ListenRequest(peer_id=registration.peer_id, token=registration.token)
        try:
            call = self._connected().Listen(request)
        except grpc.RpcError as error:
            raise self._failure(error) from None
        return Listening(self, call, call.cancel)

    def connect(
        self,
        peer: str,
        path: tracker_pb2.ConnectPath,
        reverse_port: int = 0,
        caller_ip: str = "",
    ) -> ConnectAnswer:
        """Ask the tracker to reach `peer` by `path` (tracker_pb2.CONNECT_PATH_*); the caller's
        half. Raises ConnectRefusedError with the tracker's reason, or another ClientError.
        `caller_ip`: this host's own address towards the tracker, for a reverse path.
        """
        request = tracker_pb2.ConnectRequest(
            peer_id=peer, path=path, reverse_port=reverse_port, caller_ip=caller_ip
        )
        try:
            reply = self._connected().Connect(request, timeout=self._timeout)
        except grpc.RpcError as error:
            if error_details.read(error) is None:  # no answer about the peer: the tracker's
                raise self._failure(error) from None
            raise connect_refused(self.address, peer, error) from None
        return ConnectAnswer(
            tuple(reply.local_addresses),
            reply.dialing,
            reply.session,
            reply.secret,
            reply.relay_address,
            reply.relay_ticket,
            reply.caller_behind_nat,
        )

    def watch_reconnects(self, callback: Callable[[], None]) -> None:
        """Keep the channel connected, and call `callback` each time it connects again after
        losing the tracker (a restart, say). It runs on gRPC's thread, so it must be quick.
        """
        # lost: a connection failed, or one that was up closed (IDLE after READY); the first
        # IDLE -> CONNECTING -> READY of a new channel is no reconnection.
        state = {"ready": False, "lost": False}

        def changed(connectivity: grpc.ChannelConnectivity) -> None:
            if connectivity is grpc.ChannelConnectivity.READY:
                lost = state["lost"]
                state.update(ready=True, lost=False)
                if lost:
                    logger.info("connected to tracker %s again", self.address)
                    callback()
            elif connectivity is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                state["lost"] = True
            elif connectivity is grpc.ChannelConnectivity.IDLE and state["ready"]:
                state["lost"] = True
                # An idle channel waits for the next call to dial; this one dials now (and on
                # failing, again with the reconnect backoff) until the tracker answers.
                channel = self._channels.get(self.address)
                if channel is not None:
                    grpc.channel_ready_future(channel)

        with self._lock:
            self._watchers.append(changed)
            for channel in self._channels.values():
                channel.subscribe(changed, try_to_connect=False)

    def reconnect(self) -> None:
        """Dial the tracker afresh, on a new connection: the one in use went silent (a home
        router may have dropped its mapping without a word). Calls on the old one end.
        """
        with self._lock:
            address = self.address
            old = self._channels.get(address)
            if old is None:
                return
            if self.plaintext:
                channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
            else:
                assert self._certificate is not None  # a channel over TLS was pinned to it
                channel = pinned_channel(address, self._certificate, _CHANNEL_OPTIONS)
            self._open(address, channel)
        old.close()
        logger.info("connecting to tracker %s again, on a new connection", address)

    def close(self) -> None:
        """Close the channels."""
        with self._lock:
            for channel in self._channels.values():
                channel.close()

    def _open(self, address: str, channel: grpc.Channel) -> tracker_pb2_grpc.TrackerServiceStub:
        """Use `channel` for `address` from now on (the lock held, or in the constructor)."""
        self._channels[address] = channel
        stub = self._stubs[address] = tracker_pb2_grpc.TrackerServiceStub(channel)
        for watcher in self._watchers:
            channel.subscribe(watcher, try_to_connect=False)
        return stub

    def _connected(self) -> tracker_pb2_grpc.TrackerServiceStub:
        """The stub of the current replica; over TLS, once the tracker's certificate is pinned
        (fetched on first use from this replica).
        """
        with self._lock:
            address = self.address
            stub = self._stubs.get(address)
            if stub is not None:
                return stub
            if self.plaintext:
                return self._open(address, grpc.insecure_channel(address, options=_CHANNEL_OPTIONS))
            if self._certificate is None:
                certificate = tracker_certificate(self.transport, address, self.addresses)
                self.tracker_identity = pinned_fingerprint(certificate)
                self._certificate = certificate
            channel = pinned_channel(address, self._certificate, _CHANNEL_OPTIONS)
            return self._open(address, channel)

    def _failing_over(self, attempt: Callable[[], T]) -> T:
        """`attempt()` at the current replica; while it finds the replica unreachable (or its
        store down), at each other replica in turn. Raises the last ClientError.
        """
        tried = 0
        while True:
            address = self.address
            try:
                return attempt()
            except TrackerUnreachableError as failure:
                tried += 1
                if tried >= len(self.addresses):
                    raise
                self._next_replica(address)
                logger.warning("%s; trying tracker %s", failure, self.address)

    def _next_replica(self, address: str) -> None:
        """Talk to the next replica from now on, unless another call moved on from `address`
        already.
        """
        with self._lock:
            if self.address == address:
                self._current = (self._current + 1) % len(self.addresses)

    def _call(
        self,
        method: Callable[
            [tracker_pb2_grpc.TrackerServiceStub], "grpc.UnaryUnaryMultiCallable[RequestT, ReplyT]"
        ],
        request: RequestT,
    ) -> ReplyT:
        """The RPC `method` (of a stub) with this client's timeout, failing over between
        replicas; its failure as a ClientError (peer.errors).
        """

        def attempt() -> ReplyT:
            call = method(self._connected())
            try:
                return call(request, timeout=self._timeout)
            except grpc.RpcError as error:
                failure = self._failure(error)
            raise failure

        return self._failing_over(attempt)

    def _failure(self, error: grpc.RpcError) -> ClientError:
        """A failed call as the ClientError the user reads."""
        failure = tracker_error(self.address, error)
        if isinstance(failure, TrackerUnreachableError) and self.plaintext:
            host, port = parse_address(self.address)
            if speaks_tls(host.strip("[]"), port):
                failure = TrackerUnreachableError(
                    tr(
                        "tracker {tracker} serves TLS and this peer runs with --plaintext: "
                        "drop --plaintext (or run the tracker with --plaintext too)",
                        tracker=self.address,
                    )
                )
        return failure

    def _search(
        self,
        request: tracker_pb2.SearchRequest,
        deadline: float,
        cancel: threading.Event | None,
    ) -> tracker_pb2.SearchResponse | None:
        """One Search call, asked again a few times while the tracker says it is busy, at
        each replica in turn while one is unreachable; None when `cancel` is set first,
        _OutOfTimeError when `deadline` (monotonic) passes first.
        """
        return self._failing_over(lambda: self._search_here(request, deadline, cancel))

    def _search_here(
        self,
        request: tracker_pb2.SearchRequest,
        deadline: float,
        cancel: threading.Event | None,
    ) -> tracker_pb2.SearchResponse | None:
        retries = 0
        while True:
            if cancel is not None and cancel.is_set():
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise _OutOfTimeError
            future = self._connected().Search.future(request, timeout=min(self._timeout, left))
            if not _wait(future, cancel):
                future.cancel()  # type: ignore[no-untyped-call]
                return None
            try:
                return future.result()
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED and (
                    time.monotonic() >= deadline
                ):
                    raise _OutOfTimeError from None
                found = error_details.read(error)
                if (
                    retries == BUSY_RETRIES
                    or found is None
                    or found.reason != reasons.SEARCHES_BUSY
                ):
                    raise self._failure(error) from None
                delay = min(found.retry_delay or 1.0, MAX_BUSY_WAIT)
                logger.info(
                    "tracker %s is busy searching; asking again in %g s", self.address, delay
                )
                retries += 1
                if cancel is not None and cancel.wait(delay):
                    return None
                if cancel is None:
                    time.sleep(delay)

    def _warn_if_more(self, found: Found) -> None:
        if found.timed_out:
            logger.warning(
                "tracker %s kept paging past this search's time; listing the %d results it "
                "sent by then",
                self.address,
                len(found.sources),
            )
        elif found.more and not found.stopped:
            logger.warning(
                "tracker %s has more matches; listing the first %d (at most %d results or "
                "%d pages per search)",
                self.address,
                len(found.sources),
                MAX_RESULTS,
                MAX_PAGES,
            )


class _OutOfTimeError(Exception):
    """A search's time ran out before the tracker's answer came."""


def _out_of_time(tracker: str, seconds: float) -> TrackerUnreachableError:
    return TrackerUnreachableError(
        tr(
            "tracker {tracker} sent no search result in {seconds} s",
            tracker=tracker,
            seconds=format(seconds, "g"),
        )
    )


def _wait(future: "grpc.Future[ReplyT]", cancel: threading.Event | None) -> bool:
    """Wait for `future`; False if `cancel` was set first."""
    if cancel is None:
        future.exception()  # waits
        return True
    done = threading.Event()
    future.add_done_callback(lambda _future: done.set())
    while not done.wait(CANCEL_POLL):
        if cancel.is_set():
            return False
    return True


def _listed(
    reply: tracker_pb2.BrowseResponse, peer: str, prefix: str, after: str, tracker: str
) -> list[Source]:
    """The files of a Browse page that are well formed (as _checked's), under `prefix`, and in
    strictly increasing name order after `after`, as Sources of `peer`; the others are dropped,
    and said in the log.
    """
    kept: list[Source] = []
    dropped = 0
    certificate = reply.certificate if len(reply.certificate) <= MAX_CERTIFICATE_BYTES else b""
    for file in reply.files:
        if not (_well_formed(file) and file.name.startswith(prefix) and file.name > after):
            dropped += 1
            continue
        after = file.name
        kept.append(
            Source(
                peer,
                file.name,
                file.size,
                file.sha256,
                certificate=certificate,
                pieces_root=file.pieces_root,
                reachable=reply.reachable,
            )
        )
    if dropped:
        logger.warning(
            "tracker %s listed %d malformed files of %s; ignored them", tracker, dropped, peer
        )
    return kept


def _well_formed(file: file_info_pb2.FileInfo) -> bool:
    """Whether a file a tracker listed has a valid name, sha256, size and pieces root."""
    try:
        check_file_name(file.name)
        check_sha256(file.sha256)
        if file.pieces_root:
            check_sha256(file.pieces_root)  # the same form: 64 lowercase hex characters
    except InvalidNameError:
        return False
    return file.size >= 0 and not (file.pieces_root and file.size == 0)


def _checked(
    results: Iterable[tracker_pb2.SearchResult],
    name: str,
    tracker: str,
    *,
    sha256: str = "",
    pieces_root: str = "",
) -> list[Source]:
    """The results that are well formed: a valid name (`name` itself for an exact search), a
    sha256 (`sha256` itself for a search by content), a size, a pieces root or none (none for
    an empty file; `pieces_root` itself for a search by root), and a peer id in the one
    form Join issues. A tracker is not trusted to send only those; what else it sends is
    dropped, and said once in the log.
    """
    kept: list[Source] = []
    dropped = 0
    for r in results:
        file = r.file
        try:
            well_formed = (
                _well_formed(file)
                and len(r.certificate) <= MAX_CERTIFICATE_BYTES
                and (not name or file.name == name)
                and (not sha256 or file.sha256 == sha256)
                and (not pieces_root or file.pieces_root == pieces_root)
                and normal_address(r.peer_id) == r.peer_id
            )
        except InvalidAddressError:
            well_formed = False
        if well_formed:
            kept.append(
                Source(
                    r.peer_id,
                    file.name,
                    file.size,
                    file.sha256,
                    certificate=r.certificate,
                    pieces_root=file.pieces_root,
                    reachable=r.reachable,
                )
            )
        else:
            dropped += 1
    if dropped:
        logger.warning(
            "tracker %s sent %d malformed search results; ignored them", tracker, dropped
        )
    return kept
