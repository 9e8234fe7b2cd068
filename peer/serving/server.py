"""create_server: a started peer server with PeerService, health and reflection."""

import logging
from concurrent import futures

import grpc
from grpc_health.v1.health import HealthServicer
from napshare.common.addresskey import AddressKey
from napshare.common.identity import Identity
from napshare.common.metrics import Metrics
from napshare.common.protocol import PEER_SERVICE
from napshare.common.ratelimit import TokenBucket
from napshare.common.serving import (
    BACKLOG_OPTIONS,
    MAX_CONCURRENT_RPCS,
    PortInUseError,
    add_health_and_reflection,
    bind,
    cap_connections,
    connection_options,
    connections_allowed,
)
from napshare.common.tls import server_credentials
from napshare.peer.defaults import (
    DEFAULT_CHUNK_SIZE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
    UPLOAD_SLOT_HOLD,
)
from napshare.peer.folder.store import SharedFolder
from napshare.peer.serving.callers import Callers
from napshare.peer.serving.servicer import PeerServicer
from napshare.peer.serving.slots import Fairness, QueueLimits, UploadSlots
from napshare.peer.serving.uploads import Uploads

logger = logging.getLogger(__name__)

SERVICE_NAME = PEER_SERVICE
# Threads beyond the upload slots and the queue's places, so that health checks, reflection
# and the downloads that get RESOURCE_EXHAUSTED are answered at once instead of waiting
# behind running and waiting uploads.
SPARE_THREADS = 16
MAX_REQUEST_BYTES = 64 * 1024


def create_server(
    folder: SharedFolder,
    *,
    host: str = "0.0.0.0",
    port: int = 0,
    max_uploads: int = 4,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float | None = None,
    fairness: Fairness | None = None,
    queue: QueueLimits | None = None,
    slot_hold: float = UPLOAD_SLOT_HOLD,
    max_upload_rate: float = 0,
    health: HealthServicer | None = None,
    metrics: Metrics | None = None,
    tls: Identity | None = None,
    callers: Callers | None = None,
    max_connections: int = MAX_CONNECTIONS,
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
    own_host: str = "",
) -> tuple[grpc.Server, int]:
    """Start a peer server sharing `folder` and return it with its port.

    With `tls` it serves TLS with that identity's certificate; without, plain text.

    With `metrics` (made with peer_metrics()), RPCs, uploads and slots are counted there.
    With `fairness`, slots are limited per client address and slow readers lose theirs.
    With `queue`, Downloads that ask to wait when every slot is taken wait in a queue.
    A slot whose Download sent its whole range is held `slot_hold` seconds for the same client
    and file (0: not held), for the next part it asks for.
    With `max_upload_rate` (bytes per second; 0, the default, is no cap), all uploads
    together send at most that, and a reader is not held slow for what the cap holds back.
    With `callers`, calls on connections this peer spliced in (reverse, relayed) count for the
    downloaders recorded there; those connections come from `own_host`, whose connections
    (this peer's own) are not capped. The server holds at most `max_connections` connections
    (fewer if the process's open files are short), `max_connections_per_address` from one
    address (an IPv6 /64 with the default fairness), and closes one whose TLS handshake has
    not ended within common.serving.HANDSHAKE_SECONDS.
    Raises ValueError for a bad chunk size, max_uploads or stall_timeout, and
    common.serving.PortInUseError when host:port cannot be bound.
    """
    if fairness is not None:
        fairness = fairness.under_cap(max_upload_rate, max_uploads)
    slots = UploadSlots(max_uploads, stall_timeout, fairness, queue, slot_hold)
    uploads = Uploads(folder, slots, chunk_size, TokenBucket(max_upload_rate))
    if metrics is not None:
        _count_uploads(metrics, uploads)
    workers = max_uploads + slots.queue_limits.most + SPARE_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peer-rpc"),
        # Calls past the workers wait for one: a Download past the upload slots is refused
        # by the slots at once, so health checks queued among them are soon answered.
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        interceptors=[] if metrics is None else [metrics.interceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.so_reuseport", 0),  # a second peer on a taken port must fail, not share it
            *BACKLOG_OPTIONS,
            *connection_options(connections_allowed(max_connections)),
        ],
    )
    servicer = PeerServicer(uploads, callers)
    handler = grpc.unary_stream_rpc_method_handler(
        servicer.Download,
        request_deserializer=None,  # Download parses it: bad bytes get INVALID_ARGUMENT
        response_serializer=None,  # Download yields bytes already in wire format
    )
    layer_handler = grpc.unary_unary_rpc_method_handler(
        servicer.GetPieceLayer, request_deserializer=None, response_serializer=None
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE_NAME, {"Download": handler, "GetPieceLayer": layer_handler}
            ),
        )
    )
    add_health_and_reflection(server, [SERVICE_NAME], health)
    try:
        bound = bind(server, host, port, None if tls is None else server_credentials(tls))
    except PortInUseError:
        server.stop(None)
        raise
    server.start()
    cap_connections(
        server,
        bound,
        max_connections_per_address,
        AddressKey() if fairness is None else fairness.address_key,
        skip=lambda ip, _port: bool(own_host) and ip == own_host,
    )
    logger.info(
        "serving %s on port %d (max %d uploads, %d waiting, chunks of %d bytes, upload cap %s)",
        folder.root,
        bound,
        max_uploads,
        slots.queue_limits.most,
        uploads.chunk_size,
        f"{max_upload_rate:g} B/s" if max_upload_rate else "none",
    )
    return server, bound


def peer_metrics() -> Metrics:
    """A metrics registry for one serving peer, to pass to create_server and serve."""
    return Metrics("napshare_peer")


def _count_uploads(metrics: Metrics, uploads: Uploads) -> None:
    tally, slots = uploads.tally, uploads.slots
    metrics.reading(
        "counter",
        "served_bytes",
        "File bytes sent to downloading peers.",
        lambda: tally.bytes_served,
    )
    metrics.reading("gauge", "uploads_active", "Downloads being served now.", lambda: tally.active)
    metrics.reading("gauge", "upload_slots_in_use", "Upload slots held now.", lambda: slots.in_use)
    metrics.reading(
        "gauge",
        "upload_slots_kept",
        "Upload slots kept a moment for a client whose call on a file ended (--upload-slot-hold).",
        lambda: slots.kept,
    )
    metrics.reading(
        "gauge", "upload_slots", "Upload slots in all (--max-uploads).", lambda: slots.max_uploads
    )
    metrics.reading(
        "gauge",
        "upload_queue_waiting",
        "Downloads waiting in the queue for an upload slot now.",
        lambda: slots.waiting,
    )
