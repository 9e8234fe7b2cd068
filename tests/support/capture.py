"""What an eavesdropper on a plain text connection sees: a TCP proxy that records the bytes a
client sends, and the gRPC messages in them.

The proxy copies both ways unchanged and keeps what the client sent. `messages(stream)` reads
that as HTTP/2 (the connection preface, then frames), gathers the DATA of one stream and splits
it into gRPC's length-prefixed messages, as anyone on the path can: nothing is encrypted.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA = 0x0
PADDED = 0x8


class RecordingProxy:
    """Listens on 127.0.0.1 (a free port) and relays to `target`, recording the client's
    bytes of each connection.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.sent: list[bytearray] = []  # per connection, what the client sent
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def messages(self, stream: int = 1, connection: int = 0) -> list[bytes]:
        """The gRPC messages the client sent on HTTP/2 stream `stream` of a connection."""
        with self._lock:
            data = bytes(self.sent[connection])
        assert data.startswith(PREFACE), "not an HTTP/2 connection in clear"
        at, body = len(PREFACE), bytearray()
        while at + 9 <= len(data):
            length = int.from_bytes(data[at : at + 3], "big")
            kind, flags = data[at + 3], data[at + 4]
            stream_id = struct.unpack(">I", data[at + 5 : at + 9])[0] & 0x7FFFFFFF
            payload = data[at + 9 : at + 9 + length]
            at += 9 + length
            if kind == DATA and stream_id == stream:
                if flags & PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                body += payload
        found, at = [], 0
        while at + 5 <= len(body):
            size = int.from_bytes(body[at + 1 : at + 5], "big")
            found.append(bytes(body[at + 5 : at + 5 + size]))
            at += 5 + size
        return found

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            record = bytearray()
            with self._lock:
                self.sent.append(record)
                self._sockets += [client, upstream]
            threading.Thread(
                target=self._copy, args=(client, upstream, record), daemon=True
            ).start()
            threading.Thread(target=self._copy, args=(upstream, client, None), daemon=True).start()

    def _copy(self, source: socket.socket, sink: socket.socket, record: bytearray | None) -> None:
        try:
            while chunk := source.recv(65536):
                if record is not None:
                    with self._lock:
                        record += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
