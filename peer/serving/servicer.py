"""PeerServicer: Download and GetPieceLayer requests to Uploads calls, and their answers back."""

import logging
from collections.abc import Generator, Iterator

import grpc
from napshare.common.messages import MalformedRequestError, parse_request
from napshare.peer.serving import status
from napshare.peer.serving.callers import Callers
from napshare.peer.serving.slots import LeftQueueError
from napshare.peer.serving.uploads import DownloadSpec, Transfer, Uploads, Waiting
from napshare.peer.wire import queue_message
from napshare.v1 import peer_pb2

logger = logging.getLogger(__name__)

QUEUE_REPORT_INTERVAL = 5.0  # seconds between queue positions sent to a waiting Download


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
        started: Transfer | Waiting
        try:
            # The same connection asking for more of the same file gets back the slot it held.
            connection = context.peer()
            if request.wait_for_slot:
                started = self._uploads.start_or_wait(spec, address, context.cancel, connection)
            else:
                started = self._uploads.start(spec, address, context.cancel, connection)
        except Exception as error:
            logger.info("not serving %r to %s: %s", spec.name[:256], address, error)
            status.abort(context, error)
        if isinstance(started, Waiting):
            try:
                transfer = yield from self._wait(started, address, context)
            finally:
                started.close()
            if transfer is None:
                return
        else:
            transfer = started
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

    @staticmethod
    def _wait(
        waiting: Waiting, address: str, context: grpc.ServicerContext
    ) -> Generator[bytes, None, Transfer | None]:
        """Send the queue position of `waiting` until its turn comes; its transfer then, or
        None when the downloader went away.
        """
        place = waiting.place
        context.add_callback(place.leave)
        try:
            while (report := place.update(QUEUE_REPORT_INTERVAL)) is not None:
                logger.debug("%s waits for an upload slot: %s", address, report)
                yield queue_message(report.position, report.waiting, report.estimate or 0)
        except LeftQueueError:
            logger.info("%s left the upload queue", address)
            return None
        return waiting.transfer()

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
