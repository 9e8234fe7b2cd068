"""A hostile tracker: a real gRPC TrackerService on a free loopback port whose Search answers
what an attacker running a tracker would (every other call is refused as not implemented).

`peers` fake sources of one file, on loopback addresses where nothing listens (so every dial
is refused at once, and no traffic leaves the machine), each with a well-formed certificate
and said to be reachable; or, with `endless`, pages without a result, each pointing to one
more, each answered after `page_delay` seconds.

With `stalling`, the fake peers are said to be behind NATs, and every Connect for one says
the peer is dialing back (it never does), or for the relay names a loopback port that
accepts connections and never answers: each fake peer then costs a downloader every wait
reach has (peer.defaults: REVERSE_WAIT, RELAY_WAIT).
"""

import os
import socket
import threading
import time
from concurrent import futures

import grpc
from napshare.common.identity import PEER_NAME, Identity, make_identity
from napshare.common.protocol import MAX_PAGE_SIZE
from napshare.common.tls import server_credentials
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc


class HostileTracker(tracker_pb2_grpc.TrackerServiceServicer):
    """Lists `peers` fake sources of `file`, or endless empty pages (see the module)."""

    def __init__(
        self,
        file: file_info_pb2.FileInfo,
        *,
        peers: int = 0,
        endless: bool = False,
        page_delay: float = 0.0,
        tls: Identity | None = None,
        stalling: bool = False,
    ) -> None:
        self.file = file
        self.endless = endless
        self.page_delay = page_delay
        self.pages = 0  # Search calls answered
        self.connects = 0  # Connect calls answered
        self._lock = threading.Lock()
        certificate = make_identity(PEER_NAME).certificate_der
        self._results = [
            tracker_pb2.SearchResult(
                peer_id=_fake_address(index),
                file=file,
                certificate=certificate,
                reachable=not stalling,
            )
            for index in range(peers)
        ]
        self._stalling = stalling
        self._blackhole = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        tracker_pb2_grpc.add_TrackerServiceServicer_to_server(self, self.server)
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials(tls))
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(None)
        self._blackhole.close()

    def Connect(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.ConnectRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.ConnectResponse:
        with self._lock:
            self.connects += 1
        if not self._stalling:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no Connect here")
        if request.path == tracker_pb2.CONNECT_PATH_RELAY:
            port = self._blackhole.getsockname()[1]
            return tracker_pb2.ConnectResponse(
                relay_address=f"127.0.0.1:{port}", relay_ticket=os.urandom(64)
            )
        return tracker_pb2.ConnectResponse(
            dialing=True, session=os.urandom(16), secret=os.urandom(32)
        )

    def Search(  # noqa: N802 - the RPC's name
        self, request: tracker_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> tracker_pb2.SearchResponse:
        with self._lock:
            self.pages += 1
        if self.page_delay:
            time.sleep(self.page_delay)
        if self.endless:
            return tracker_pb2.SearchResponse(
                truncated=True, next_page_token=f"page-{int(request.page_token[5:] or 0) + 1}"
            )
        start = int(request.page_token or 0)
        size = min(request.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        end = min(start + size, len(self._results))
        token = str(end) if end < len(self._results) else ""
        return tracker_pb2.SearchResponse(
            results=self._results[start:end], truncated=bool(token), next_page_token=token
        )


def _fake_address(index: int) -> str:
    """A loopback address and port for fake peer `index` where nothing listens: in 127.1.0.0/16
    (250 hosts in each /24), on ports from 9 (discard, which nothing serves here) up.
    """
    block, host = divmod(index, 250)
    return f"127.1.{block % 256}.{host + 1}:{9 + block // 256}"
