"""The peer's gRPC server: PeerService.Download from the shared folder, health, reflection."""

import logging
from collections.abc import Iterator
from concurrent import futures

import grpc
from grpc_health.v1.health import HealthServicer
from napshare.v1 import peer_pb2

from common.serving import PortInUseError, add_health_and_reflection, bind
from peer import errors
from peer.service import DEFAULT_CHUNK_SIZE, Downloads, DownloadSpec
from peer.store import SharedFolder
from peer.uploads import UploadSlots

logger = logging.getLogger(__name__)

SERVICE_NAME: str = peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name
# Threads beyond the upload slots, so that health checks, reflection and the downloads that
# get RESOURCE_EXHAUSTED are answered at once instead of waiting behind running uploads.
SPARE_THREADS = 16
MAX_REQUEST_BYTES = 64 * 1024


class PeerServicer:
    """Translates Download requests and responses; the work is in peer.service."""

    def __init__(self, downloads: Downloads) -> None:
        self._downloads = downloads

    def Download(  # noqa: N802 - the RPC's name
        self, request: peer_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Stream the requested range as serialized DownloadResponse messages."""
        spec = DownloadSpec(request.name, request.offset, request.limit, request.sha256)
        try:
            transfer = self._downloads.start(spec, on_stall=context.cancel)
        except Exception as error:
            logger.info("not serving %r to %s: %s", spec.name[:256], context.peer(), error)
            errors.abort(context, error)
        logger.info(
            "sending %r bytes %d-%d to %s", spec.name, transfer.start, transfer.end, context.peer()
        )
        context.add_callback(transfer.release_slot)
        try:
            yield from transfer.messages(self._downloads.chunk_size)
        except Exception as error:
            errors.abort(context, error)
        finally:
            transfer.close()


def create_server(
    folder: SharedFolder,
    *,
    host: str = "0.0.0.0",
    port: int = 0,
    max_uploads: int = 4,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    stall_timeout: float | None = None,
    health: HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Start a peer server sharing `folder` and return it with its port.

    Raises ValueError for a bad chunk size, max_uploads or stall_timeout, and
    common.serving.PortInUseError when host:port cannot be bound.
    """
    downloads = Downloads(folder, UploadSlots(max_uploads, stall_timeout), chunk_size)
    workers = max_uploads + SPARE_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peer-rpc"),
        maximum_concurrent_rpcs=workers,
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.so_reuseport", 0),  # a second peer on a taken port must fail, not share it
        ],
    )
    handler = grpc.unary_stream_rpc_method_handler(
        PeerServicer(downloads).Download,
        request_deserializer=peer_pb2.DownloadRequest.FromString,
        response_serializer=None,  # Download yields bytes already in wire format
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Download": handler}),)
    )
    add_health_and_reflection(server, [SERVICE_NAME], health)
    try:
        bound = bind(server, host, port)
    except PortInUseError:
        server.stop(None)
        raise
    server.start()
    logger.info(
        "serving %s on port %d (max %d uploads, chunks of %d bytes)",
        folder.root,
        bound,
        max_uploads,
        downloads.chunk_size,
    )
    return server, bound
