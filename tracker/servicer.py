"""TrackerServicer: protobuf requests to IndexStore calls and back, plus the console lines."""

import logging
import math
from collections.abc import Iterator

import grpc
from napshare.common import reasons
from napshare.common.address import InvalidAddressError, caller_address, caller_ip, normal_address
from napshare.common.console import PEER_JOINED, PEER_SEARCHED
from napshare.common.messages import MalformedRequestError, parse_request
from napshare.tracker.answers import Answer, Answers
from napshare.tracker.connects import Connects, check_local_addresses
from napshare.tracker.console import say
from napshare.tracker.errors import InvalidRequestError, TrackerError, UnknownPeerError
from napshare.tracker.proof import JoinProof
from napshare.tracker.reachability import AddressCheck
from napshare.tracker.status import abort
from napshare.tracker.store.base import FileEntry, IndexStore, SearchOutcome
from napshare.tracker.switchboard import LISTEN_KEEPALIVE, Switchboard
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

logger = logging.getLogger(__name__)


class TrackerServicer(tracker_pb2_grpc.TrackerServiceServicer):
    """The gRPC face of an IndexStore."""

    def __init__(
        self,
        index: IndexStore,
        proof: JoinProof | None = None,
        check: AddressCheck | None = None,
        *,
        switchboard: Switchboard[tracker_pb2.ListenResponse] | None = None,
        connects: Connects | None = None,
        listen_keepalive: float = LISTEN_KEEPALIVE,
    ) -> None:
        """Without `proof` and `check`, those of a tracker that serves plain text; without
        `switchboard` and `connects`, their defaults (and no relay).
        """
        self._index = index
        self._proof = proof or JoinProof("", index)
        self._check = check or AddressCheck(tls=False)
        self._switchboard = Switchboard() if switchboard is None else switchboard
        self._connects = Connects(index, self._switchboard) if connects is None else connects
        self._keepalive = listen_keepalive
        self._keepalive_seconds = max(1, math.ceil(listen_keepalive))
        # The protocol counts whole seconds; sub-second intervals exist for tests.
        self._interval_seconds = max(1, math.ceil(index.heartbeat_interval))
        # Popular searches repeat: their answers are kept, serialized, until the index changes.
        self._answers = Answers()

    def Join(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.JoinRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.JoinResponse:
        try:
            caller = context.peer()
            host = request.host or _caller_host(caller)
            # Limits count by where the call comes from: a Join can claim any host.
            source = caller_ip(caller) or caller
            identity = self._proof.identity(request) if request.certificate else ""
            local_addresses = check_local_addresses(request.local_addresses)
            # Refused before dialing: a Join for a taken address costs the tracker no check.
            peer_id = self._index.claim(host, request.port, identity, may_prove=bool(identity))
            reachable = bool(identity) and self._check.reachable(
                peer_id, request.certificate, source
            )
            registration = self._index.join(
                host,
                request.port,
                request.files,
                source,
                identity=identity,
                certificate=request.certificate,
                reachable=reachable,
                local_addresses=local_addresses,
            )
        except TrackerError as error:
            abort(context, error)
        say(PEER_JOINED, peer=registration.peer_id, files=[file.name for file in request.files])
        if identity:
            logger.info(
                "peer %s (identity %s…) is %s",
                registration.peer_id,
                identity[:16],
                "reachable" if reachable else "not reachable at that address",
            )
        return tracker_pb2.JoinResponse(
            peer_id=registration.peer_id,
            token=registration.token,
            heartbeat_interval_seconds=self._interval_seconds,
            reachable=reachable,
        )

    def Search(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.SearchResponse:
        return tracker_pb2.SearchResponse.FromString(
            self.search_wire(request.SerializeToString(), context)
        )

    def search_wire(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        """Search on serialized messages, as the server registers it: answers are kept as bytes."""
        answer = self._answers.get(data)
        if answer is None or not self._index.unchanged_since(answer.generation):
            try:
                answer = self._answer(data)
            except (TrackerError, MalformedRequestError) as error:
                abort(context, error)
            self._answers.put(data, answer)
        if answer.asker is None:
            peer = context.peer()
            say(PEER_SEARCHED, peer=caller_address(peer) or peer, name=answer.searched)
        else:
            say(PEER_SEARCHED, peer=answer.asker, name=answer.searched)
        return answer.response

    def _answer(self, data: bytes) -> Answer:
        request = parse_request(tracker_pb2.SearchRequest, data)
        outcome = self._index.search(
            name=request.name,
            query=request.query,
            sha256=request.sha256,
            pieces_root=request.pieces_root,
            limit=request.page_size or request.limit,
            page_token=request.page_token,
        )
        return Answer(
            outcome.generation,
            _search_response(outcome).SerializeToString(),
            _known_address(request.peer_id),
            _searched(request),
        )

    def Browse(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.BrowseRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.BrowseResponse:
        try:
            outcome = self._index.browse(
                request.peer_id,
                request.folder,
                limit=request.page_size,
                page_token=request.page_token,
            )
        except TrackerError as error:
            abort(context, error)
        logger.debug(
            "%s browsed %r of peer %s: %d files",
            context.peer(),
            request.folder,
            request.peer_id,
            len(outcome.files),
        )
        return tracker_pb2.BrowseResponse(
            files=[_file_info(file) for file in outcome.files],
            next_page_token=outcome.next_page_token,
            certificate=outcome.certificate,
            reachable=outcome.reachable,
        )

    def Update(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.UpdateRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.UpdateResponse:
        try:
            self._index.update(request.peer_id, request.token, request.files, request.removed_names)
        except TrackerError as error:
            abort(context, error)
        logger.debug(
            "peer %s updated %d files and removed %d",
            request.peer_id,
            len(request.files),
            len(request.removed_names),
        )
        return tracker_pb2.UpdateResponse()

    def Heartbeat(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.HeartbeatRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.HeartbeatResponse:
        try:
            self._index.heartbeat(request.peer_id, request.token)
        except TrackerError as error:
            abort(context, error)
        return tracker_pb2.HeartbeatResponse()

    def Leave(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.LeaveRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.LeaveResponse:
        try:
            self._index.leave(request.peer_id, request.token)
        except TrackerError as error:
            abort(context, error)
        peer_id = normal_address(request.peer_id)
        self._switchboard.end(peer_id, UnknownPeerError(f"peer {peer_id} left"))
        logger.info("peer %s left", request.peer_id)
        return tracker_pb2.LeaveResponse()

    def Listen(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.ListenRequest, context: grpc.ServicerContext
    ) -> Iterator[tracker_pb2.ListenResponse]:
        try:
            self._index.verify(request.peer_id, request.token)
            peer_id = normal_address(request.peer_id)  # verify checked that it parses
            listener = self._switchboard.register(peer_id, request.token)
        except TrackerError as error:
            abort(context, error)
        context.add_callback(lambda: self._switchboard.unregister(listener))
        logger.info("peer %s listens for connection requests", peer_id)
        started = tracker_pb2.ListenStarted(keepalive_seconds=self._keepalive_seconds)
        yield tracker_pb2.ListenResponse(started=started)
        keepalive = tracker_pb2.ListenResponse(keepalive=tracker_pb2.ListenKeepalive())
        while True:
            event = listener.next(self._keepalive)
            if listener.closed:
                break
            if event is not None:
                yield event
                continue
            try:
                self._index.verify(peer_id, request.token)  # still registered?
            except TrackerError as error:
                listener.close(error)
                break
            yield keepalive
        self._switchboard.unregister(listener)
        if listener.error is not None:
            logger.info("peer %s stops listening: %s", peer_id, listener.error)
            abort(context, listener.error)

    def Connect(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.ConnectRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.ConnectResponse:
        caller = caller_ip(context.peer())
        try:
            answer = self._connects.connect(
                caller, request.peer_id, request.path, request.reverse_port, request.caller_ip
            )
        except TrackerError as error:
            logger.info("no connection to %s for %s: %s", request.peer_id[:80], caller, error)
            abort(context, error)
        how = "a relay" if request.path == tracker_pb2.CONNECT_PATH_RELAY else "a reverse dial"
        if answer.caller_behind_nat:
            how = "nobody: the caller is behind a NAT, its local addresses only"
        elif not answer.dialing:
            how = "its local addresses only"
        logger.info("connecting %s to peer %s by %s", caller, request.peer_id, how)
        return answer


def _search_response(outcome: SearchOutcome) -> tracker_pb2.SearchResponse:
    return tracker_pb2.SearchResponse(
        results=[
            tracker_pb2.SearchResult(
                peer_id=match.peer_id,
                file=_file_info(match.file),
                certificate=match.certificate,
                reachable=match.reachable,
            )
            for match in outcome.matches
        ],
        truncated=outcome.truncated,
        next_page_token=outcome.next_page_token,
        gathering=outcome.gathering,
    )


def _searched(request: tracker_pb2.SearchRequest) -> str:
    """What a search asked for, for the console line (a search that passed the checks)."""
    if request.sha256:
        return f"sha256:{request.sha256.lower()}"
    if request.pieces_root:
        return f"pieces_root:{request.pieces_root.lower()}"
    return request.name or " ".join(request.query.split())


def _file_info(file: FileEntry) -> file_info_pb2.FileInfo:
    return file_info_pb2.FileInfo(
        name=file.name, size=file.size, sha256=file.sha256, pieces_root=file.pieces_root
    )


def _caller_host(peer: str) -> str:
    """The IP address the call came from, for a Join with an empty host."""
    host = caller_ip(peer)
    if host is None:
        raise InvalidRequestError(
            f"host is empty and the caller's address {peer[:80]!r} is not an IP address; set host",
            reasons.CALLER_ADDRESS_UNKNOWN,
            {"field": "host"},
        )
    return host


def _known_address(peer_id: str) -> str | None:
    """`peer_id` in its normal form if it is a well-formed `host:port`, else None."""
    if not peer_id:
        return None
    try:
        return normal_address(peer_id)
    except InvalidAddressError:
        return None
