"""create_server: a started gRPC server with the tracker, health, reflection and a lease reaper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1.health import HealthServicer
from napshare.common.addresskey import AddressKey
from napshare.common.console import PEER_DEAD
from napshare.common.identity import Identity
from napshare.common.metrics import Metrics
from napshare.common.protocol import HEARTBEAT_INTERVAL, TRACKER_SERVICE
from napshare.common.serving import (
    BACKLOG_OPTIONS,
    MAX_CONCURRENT_RPCS,
    add_health_and_reflection,
    bind,
    cap_connections,
    connection_options,
    connections_allowed,
    on_bytes,
)
from napshare.common.tls import server_credentials
from napshare.tracker import console
from napshare.tracker.connects import CONNECT_RATE, MAX_PEER_DIALS, Connects, RelayOffer
from napshare.tracker.errors import StoreUnavailableError
from napshare.tracker.index import TrackerIndex
from napshare.tracker.limits import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS, Limits
from napshare.tracker.proof import JoinProof
from napshare.tracker.reachability import AddressCheck
from napshare.tracker.servicer import TrackerServicer
from napshare.tracker.status import abort
from napshare.tracker.store.base import MAX_CONCURRENT_SEARCHES, IndexStore
from napshare.tracker.switchboard import LISTEN_KEEPALIVE, Switchboard
from napshare.v1 import tracker_pb2

logger = logging.getLogger(__name__)

SERVICE_NAME = TRACKER_SERVICE
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TICK_SECONDS = 0.1  # how often expired leases are dropped and console lines flushed
# Listen streams last for hours, idle but for the tracker's keepalives. A client's HTTP/2
# pings (gRPC keepalive) are accepted every 10 s while no data flows, and without calls too,
# so that a peer's pings never earn a GOAWAY with too_many_pings.
LONG_STREAM_OPTIONS = [
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def create_server(
    index: IndexStore | None = None,
    *,
    host: str = "0.0.0.0",
    port: int = 0,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    max_concurrent_searches: int = MAX_CONCURRENT_SEARCHES,
    health: HealthServicer | None = None,
    max_workers: int = 16,
    metrics: Metrics | None = None,
    limits: Limits | None = None,
    tls: Identity | None = None,
    switchboard: Switchboard[tracker_pb2.ListenResponse] | None = None,
    listen_keepalive: float = LISTEN_KEEPALIVE,
    connect_rate: float = CONNECT_RATE,
    max_peer_dials: int = MAX_PEER_DIALS,
    relay: RelayOffer | None = None,
    address_key: AddressKey | None = None,
    max_connections: int = MAX_CONNECTIONS,
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
) -> tuple[grpc.Server, int]:
    """Start a tracker on host:port (0 picks a free port) and return it with its port.

    With `tls`, it serves TLS with that identity, and Joins must be signed for it; without,
    plain text (Joins signed for the plain text tracker, "").

    Peers it cannot reach hold Listen streams in `switchboard` (a new one holding at most
    MAX_LISTENERS when None; pass one to close its streams before stopping the server), each
    sent a keepalive every `listen_keepalive` seconds; Connect hands out `relay` (None: no
    relay), at most `connect_rate` calls a second per caller IP and `max_peer_dials` dials
    pending per peer.

    `heartbeat_interval`, `max_concurrent_searches`, `limits` (default Limits()) and
    `address_key` (what one address is to per-address limits) apply only when no `index` is
    given; else the index's own rule applies to every per-address limit. With `metrics` (made
    with tracker_metrics()), RPCs, the index's size and expired leases are counted there.
    It holds at most `max_connections` connections (fewer if the process's open files are
    short), at most `max_connections_per_address` from one address (common.conncap), and
    closes one that has not finished its TLS handshake in HANDSHAKE_SECONDS.
    Raises common.serving.PortInUseError if the address cannot be bound.
    """
    if index is None:
        index = TrackerIndex(
            heartbeat_interval,
            max_concurrent_searches=max_concurrent_searches,
            limits=limits,
            address_key=address_key,
        )
    on_expired = _count_index(metrics, index)
    if switchboard is None:
        switchboard = Switchboard()
    # Each Listen stream holds a thread for as long as it is open: the others keep theirs.
    workers = max_workers + switchboard.max_listeners
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tracker-rpc"),
        interceptors=[] if metrics is None else [metrics.interceptor()],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second tracker on a taken port must fail, not share it
            *BACKLOG_OPTIONS,
            *LONG_STREAM_OPTIONS,
            *connection_options(connections_allowed(max_connections)),
        ],
    )
    proof = JoinProof("" if tls is None else tls.fingerprint, index)
    connects = Connects(
        index, switchboard, rate=connect_rate, max_peer_dials=max_peer_dials, relay=relay
    )
    servicer = TrackerServicer(
        index,
        proof,
        AddressCheck(tls=tls is not None, address_key=index.address_key),
        switchboard=switchboard,
        connects=connects,
        listen_keepalive=listen_keepalive,
    )
    if metrics is not None:
        metrics.reading("gauge", "listeners", "Listen streams open now.", lambda: len(switchboard))
        metrics.labelled_reading(
            "counter",
            "connects",
            "Connect calls answered, by path: reverse and relay (the peer was asked to dial), "
            "local (its local addresses only), behind_nat (the caller is behind a NAT, so "
            "nobody was asked to dial it).",
            "path",
            connects.answered,
        )
    handlers = _handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    add_health_and_reflection(server, [SERVICE_NAME], health)
    bound = bind(server, host, port, None if tls is None else server_credentials(tls))
    server.start()
    cap_connections(server, bound, max_connections_per_address, index.address_key)
    threading.Thread(
        target=_reap, args=(server, index, on_expired), name="tracker-leases", daemon=True
    ).start()
    logger.debug(
        "tracker serving on port %d, heartbeat interval %s s", bound, index.heartbeat_interval
    )
    return server, bound


def _handlers(service: TrackerServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """What the generated add_TrackerServiceServicer_to_server registers, but on bytes.

    The servicer parses every request itself, so bytes that are no message get
    INVALID_ARGUMENT rather than gRPC's INTERNAL. Search answers are kept serialized, so a
    repeated search costs no protobuf work.
    """

    def typed(method: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            on_bytes(method, request, abort),
            request_deserializer=None,
            response_serializer=response.SerializeToString,
        )

    return {
        "Join": typed(service.Join, tracker_pb2.JoinRequest, tracker_pb2.JoinResponse),
        "Search": grpc.unary_unary_rpc_method_handler(service.search_wire),
        "Browse": typed(service.Browse, tracker_pb2.BrowseRequest, tracker_pb2.BrowseResponse),
        "Update": typed(service.Update, tracker_pb2.UpdateRequest, tracker_pb2.UpdateResponse),
        "Heartbeat": typed(
            service.Heartbeat, tracker_pb2.HeartbeatRequest, tracker_pb2.HeartbeatResponse
        ),
        "Leave": typed(service.Leave, tracker_pb2.LeaveRequest, tracker_pb2.LeaveResponse),
        "Listen": grpc.unary_stream_rpc_method_handler(
            on_bytes(service.Listen, tracker_pb2.ListenRequest, abort),
            request_deserializer=None,
            response_serializer=tracker_pb2.ListenResponse.SerializeToString,
        ),
        "Connect": typed(service.Connect, tracker_pb2.ConnectRequest, tracker_pb2.ConnectResponse),
    }


def tracker_metrics() -> Metrics:
    """A metrics registry for one tracker, to pass to create_server and serve."""
    return Metrics("napshare_tracker")


def _count_index(metrics: Metrics | None, index: IndexStore) -> Callable[[int], None]:
    """Report the index's size to `metrics`; return what counts expired leases."""
    if metrics is None:
        return lambda _count: None
    metrics.reading("gauge", "peers", "Peers registered.", lambda: index.stats().peers)
    metrics.reading(
        "gauge", "files", "Files shared, counted once per peer.", lambda: index.stats().entries
    )
    metrics.reading("gauge", "names", "Distinct file names shared.", lambda: index.stats().names)
    expired = metrics.counter("leases_expired", "Peers dropped because their lease ran out.")
    return expired.inc


def _reap(server: grpc.Server, index: IndexStore, on_expired: Callable[[int], None]) -> None:
    """Until the server stops, drop peers whose lease ran out, say so, and flush the console.

    With a shared store every replica does this; each expired peer is reported by one.
    """
    failing = False
    while server.wait_for_termination(timeout=TICK_SECONDS):
        try:
            dropped = index.expire()
            if dropped:
                on_expired(len(dropped))
            for dead in dropped:
                console.say(PEER_DEAD, peer=dead.peer_id, files=dead.names)
            if failing:
                logger.warning("the index store answers again; dropping expired peers")
            failing = False
        except StoreUnavailableError as error:
            if not failing:  # once, not ten times a second
                logger.warning("cannot drop expired peers: %s", error)
            failing = True
        except Exception:
            logger.exception("dropping expired peers failed; trying again")
        console.flush()
    console.flush()
