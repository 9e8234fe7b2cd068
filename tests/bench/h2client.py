"""A minimal HTTP/2 client that speaks gRPC's wire format, for a load generator that costs little.

A grpc-python client spends about as much CPU per call as the server it measures, so on two
cores it, not the server, sets the pace. This client sends pre-encoded frames and reads back
only frame headers: a unary call costs it a few microseconds of Python. It uses no HPACK
state (requests are literals without indexing; responses are never decoded), so a call's
outcome is judged by its frames: a response message (DATA) then end of stream is success;
end of stream without one (gRPC's trailers-only error) or RST_STREAM is failure.
"""

import socket
import struct
import time
from collections.abc import Callable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
_HEADER = struct.Struct(">I")


class ProtocolError(RuntimeError):
    """The server ended the connection or sent something this client cannot follow."""


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return _HEADER.pack(len(payload))[1:] + bytes((kind, flags)) + _HEADER.pack(stream) + payload


def _literal(value: str) -> bytes:
    raw = value.encode()
    if len(raw) >= 127:
        raise ValueError(f"header value too long for this encoder: {value[:40]!r}")
    return bytes((len(raw),)) + raw


def header_block(authority: str, path: str) -> bytes:
    """HPACK for a gRPC request: static-table names where possible, literals never indexed."""
    return (
        b"\x83"  # :method POST
        + b"\x86"  # :scheme http
        + b"\x04"  # :path, name from the static table
        + _literal(path)
        + b"\x01"  # :authority
        + _literal(authority)
        + b"\x0f\x10"  # content-type (static index 31)
        + _literal("application/grpc")
        + b"\x00"
        + _literal("te")
        + _literal("trailers")
    )


class Connection:
    """One HTTP/2 connection carrying unary gRPC calls; feed it what the socket reads."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._headers = header_block(f"{host}:{port}", path)
        self._next_stream = 1
        self._send_window = DEFAULT_WINDOW
        self._buffer = b""
        self._started: dict[int, int] = {}
        self._received: dict[int, int] = {}
        self.in_flight = 0
        settings = struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(
            ">HI", SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW
        )
        self.sock.sendall(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, _HEADER.pack(MAX_WINDOW - DEFAULT_WINDOW))
        )

    def can_send(self, message: bytes) -> bool:
        """Whether the server's flow-control window has room for one more request."""
        return self._send_window >= len(message) + 5

    def request(self, message: bytes) -> bytes:
        """The frames of one call carrying `message`; counts it as sent now."""
        stream = self._next_stream
        self._next_stream += 2
        body = b"\x00" + _HEADER.pack(len(message)) + message
        self._send_window -= len(body)
        self._started[stream] = time.perf_counter_ns()
        self.in_flight += 1
        return frame(HEADERS, END_HEADERS, stream, self._headers) + frame(
            DATA, END_STREAM, stream, body
        )

    def receive(self, data: bytes, done: Callable[[bool, int, int], None]) -> bytes:
        """Parse what arrived; call done(ok, latency_ns, response_bytes) per finished call.

        Returns the frames to send back (SETTINGS and PING acknowledgements).
        """
        buffer = self._buffer + data
        replies = []
        at = 0
        while len(buffer) - at >= 9:
            length = int.from_bytes(buffer[at : at + 3], "big")
            if len(buffer) - at - 9 < length:
                break
            kind, flags = buffer[at + 3], buffer[at + 4]
            stream = _HEADER.unpack_from(buffer, at + 5)[0] & MAX_WINDOW
            payload = buffer[at + 9 : at + 9 + length]
            at += 9 + length
            if kind == DATA and stream in self._started:
                self._received[stream] = self._received.get(stream, 0) + length
            if kind in (DATA, HEADERS) and flags & END_STREAM and stream in self._started:
                self._finish(stream, done)
            elif kind == RST_STREAM and stream in self._started:
                self._received.pop(stream, None)
                self._finish(stream, done)
            elif kind == SETTINGS and not flags & ACK:
                replies.append(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                replies.append(frame(PING, ACK, 0, payload))
            elif kind == WINDOW_UPDATE and stream == 0:
                self._send_window += _HEADER.unpack(payload)[0] & MAX_WINDOW
            elif kind == GOAWAY:
                raise ProtocolError(f"server sent GOAWAY: {payload[8:200]!r}")
        self._buffer = buffer[at:]
        return b"".join(replies)

    def _finish(self, stream: int, done: Callable[[bool, int, int], None]) -> None:
        started = self._started.pop(stream)
        received = self._received.pop(stream, 0)
        self.in_flight -= 1
        # A response message is at least its 5-byte gRPC prefix; errors come without one.
        done(received >= 5, time.perf_counter_ns() - started, max(0, received - 5))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
