"""Helpers for the tests of reaching peers behind NATs: signed Joins, Listen streams read in a
thread.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc
from napshare.common.identity import Identity, join_message
from napshare.v1 import tracker_pb2, tracker_pb2_grpc


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll `condition` until it is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {condition}"
        time.sleep(0.01)


def signed_join(
    identity: Identity,
    port: int,
    *files: object,
    host: str = "127.0.0.1",
    tracker: str = "",
    local_addresses: tuple[str, ...] = (),
) -> tracker_pb2.JoinRequest:
    """A Join of `identity` at host:port, signed for `tracker` ("" for plain text)."""
    signed_at = int(time.time())
    return tracker_pb2.JoinRequest(
        host=host,
        port=port,
        files=list(files),
        certificate=identity.certificate_der,
        signature=identity.sign(join_message(tracker, host, port, signed_at)),
        signed_at=signed_at,
        local_addresses=list(local_addresses),
    )


class ListenStream:
    """A Listen call whose messages a thread puts in a queue, with its end (an RpcError or
    None for OK) as the last item.
    """

    def __init__(self, stub: tracker_pb2_grpc.TrackerServiceStub, peer_id: str, token: str):
        self.call = stub.Listen(tracker_pb2.ListenRequest(peer_id=peer_id, token=token))
        self.items: queue.Queue[tracker_pb2.ListenResponse | grpc.RpcError | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._messages():
                self.items.put(message)
        except grpc.RpcError as error:
            self.items.put(error)
            return
        self.items.put(None)

    def _messages(self) -> Iterator[tracker_pb2.ListenResponse]:
        yield from self.call

    def next(self, timeout: float = 10.0) -> tracker_pb2.ListenResponse | grpc.RpcError | None:
        """The next message, or the stream's end; queue.Empty after `timeout` seconds."""
        return self.items.get(timeout=timeout)

    def event(self, timeout: float = 10.0) -> tracker_pb2.ListenResponse:
        """The next message that is no keepalive; AssertionError if the stream ended."""
        while True:
            item = self.next(timeout)
            assert isinstance(item, tracker_pb2.ListenResponse), f"the stream ended: {item}"
            if item.WhichOneof("event") != "keepalive":
                return item

    def cancel(self) -> None:
        self.call.cancel()
        self._thread.join(5)
