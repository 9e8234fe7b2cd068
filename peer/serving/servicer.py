"""PeerServicer: Download and GetPieceLayer requests to Uploads calls, and their answers back."""

import logging
from collections.abc import Iterator

import grpc
from napshare.common.messages import MalformedRequestError, parse_request
from napshare.peer.serving import status
from napshare.peer.serving.callers import Callers
from napshare.peer.serving.uploads import DownloadSpec, Uploads
from napshare.v1 import peer_pb2

logger = logging.getLogger(__name__)


class PeerServicer:
    """Translates requests and responses; the work is in serving.uploads."""

    def __init__(self, uploads: Uploads, callers: Callers | None = None) -> None:
        self._uploads = uploads
        self._callers = Callers() if callers is None else callers

    def Download(  # noqa: N802 - the RPC's name
        self, data: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Stream the range a serialized DownloadRequest asks for as serialized responses."""
        try:
            request = parse_request(peer_pb2.DownloadRequest, data)
        except MalformedRequestError as error:
            logger.info("not serving %s: %s", context.peer(), error)
            status.abort(context, error)
        spec = DownloadSpec(request.name, request.offset, request.limit, request.sha256)
        # Counted per IP, not per port: one client may open many connections. A connection
        # this peer dialled out and spliced in counts for the downloader it carries.
        address = self._callers.address(context.peer())
        try:
            transfer = self._uploads.start(spec, address, on_stall=context.cancel)
        except Exception as error:
            logger.info("not serving %r to %s: %s", spec.name[:256], address, error)
            status.abort(context, error)
        logger.info(
            "sending %r bytes %d-%d to %s", spec.name, transfer.start, transfer.end, address
        )
        context.add_callback(transfer.release_slot)
        try:
            yield from transfer.messages(self._uploads.chunk_size)
        except Exception as error:
            status.abort(context, error)
        finally:
            transfer.close()

    def GetPieceLayer(  # noqa: N802 - the RPC's name
        self, data: bytes, context: grpc.ServicerContext
    ) -> bytes:
        """The serialized GetPieceLayerResponse for a serialized GetPieceLayerRequest."""
        try:
            request = parse_request(peer_pb2.GetPieceLayerRequest, data)
            piece_size, hashes = self._uploads.piece_layer(request.name, request.sha256)
        except Exception as error:
            logger.info("no piece layer for %s: %s", context.peer(), error)
            status.abort(context, error)
        response = peer_pb2.GetPieceLayerResponse(piece_size=piece_size, hashes=hashes)
        return response.SerializeToString()
