"""A loopback TCP relay that holds each direction's bytes for a delay: a long link on one machine.

python -m tests.support.delayproxy TARGET --delay-ms 25 [--buffer BYTES]
    prints `delay proxy on 127.0.0.1:PORT` and relays every connection to TARGET (host:port)

Each direction of each connection has its own bounded buffer: bytes read from one side wait
there until `delay` has passed since they arrived, then go to the other side. When the buffer
is full the relay stops reading, so the sender feels the backpressure of a full link, and
memory stays at most two buffers per connection. At most `buffer / delay` bytes per second
cross one direction, which is the bandwidth-delay product of the emulated path.
"""

import argparse
import collections
import contextlib
import socket
import threading
import time
from collections.abc import Sequence

MIB = 1024 * 1024
DEFAULT_BUFFER = 8 * MIB
READ_SIZE = 256 * 1024
# A relay whose two ends stop talking for this long is dropped, so no thread outlives its use.
IDLE_TIMEOUT = 120.0


class _Pipe:
    """One direction of one connection: read from `source`, hold, write to `sink`."""

    def __init__(
        self, source: socket.socket, sink: socket.socket, delay: float, limit: int
    ) -> None:
        self._source = source
        self._sink = sink
        self._delay = delay
        self._limit = limit
        self._held: collections.deque[tuple[float, bytes]] = collections.deque()
        self._held_bytes = 0
        self.peak_held = 0  # the most bytes held at once: what the sender had in flight
        self.carried = False  # a byte came from the source
        self._ended = False  # the source closed its side (or failed): nothing more will come
        self._broken = False
        self._changed = threading.Condition()
        self.threads = [
            threading.Thread(target=self._read, name="delay-read", daemon=True),
            threading.Thread(target=self._write, name="delay-write", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        try:
            while True:
                with self._changed:
                    while self._held_bytes >= self._limit and not self._broken:
                        self._changed.wait()
                    if self._broken:
                        return
                    room = min(READ_SIZE, self._limit - self._held_bytes)
                data = self._source.recv(room)
                if not data:
                    return
                self.carried = True
                with self._changed:
                    self._held.append((time.monotonic() + self._delay, data))
                    self._held_bytes += len(data)
                    self.peak_held = max(self.peak_held, self._held_bytes)
                    self._changed.notify_all()
        except OSError:
            pass
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _write(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._held and not self._ended:
                        self._changed.wait()
                    if not self._held:
                        break
                    due, data = self._held[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._sink.sendall(data)
                with self._changed:
                    self._held.popleft()
                    self._held_bytes -= len(data)
                    self._changed.notify_all()
            with contextlib.suppress(OSError):
                self._sink.shutdown(socket.SHUT_WR)
        except OSError:
            with self._changed:
                self._broken = True
                self._changed.notify_all()
            for end in (self._source, self._sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


class DelayProxy:
    """Listens on a free loopback port and relays each connection to `target` with `delay`."""

    def __init__(self, target: tuple[str, int], delay: float, buffer: int = DEFAULT_BUFFER) -> None:
        if delay < 0 or buffer < 1:
            raise ValueError("delay must be at least 0 and buffer at least 1 byte")
        self._target = target
        self._delay = delay
        self._buffer = buffer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepter = threading.Thread(target=self._accept, name="delay-accept", daemon=True)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # the ends of the connections still open
        self._pipes: list[_Pipe] = []  # each connection's two, client to server first
        self._closed = False

    def __enter__(self) -> "DelayProxy":
        self._accepter.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        """Relay until the process is killed."""
        self._accept()

    @property
    def peak_held(self) -> int:
        """The most bytes any one direction of any connection held at once so far."""
        with self._lock:
            return max((pipe.peak_held for pipe in self._pipes), default=0)

    @property
    def connections(self) -> int:
        """How many connections have relayed bytes so far, closed ones included; one opened and
        closed without a byte (a TCP probe) does not count.
        """
        with self._lock:
            return sum(1 for pipe in self._pipes[::2] if pipe.carried)

    def close(self) -> None:
        """Stop accepting and drop every relayed connection."""
        with self._lock:
            self._closed = True
            ends = list(self._sockets)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        if self._accepter.is_alive():
            self._accepter.join()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for end in (client, server):
                end.settimeout(IDLE_TIMEOUT)
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipes = (
                _Pipe(client, server, self._delay, self._buffer),
                _Pipe(server, client, self._delay, self._buffer),
            )
            with self._lock:
                self._pipes += pipes
            for pipe in pipes:
                pipe.start()
            threading.Thread(
                target=self._reap, args=(pipes, client, server), name="delay-reap", daemon=True
            ).start()

    def _reap(self, pipes: Sequence[_Pipe], client: socket.socket, server: socket.socket) -> None:
        for pipe in pipes:
            for thread in pipe.threads:
                thread.join()
        with self._lock:
            for end in (client, server):
                if end in self._sockets:
                    self._sockets.remove(end)
                end.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected 127.0.0.1:PORT (loopback only)")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: relay to TARGET with --delay-ms until killed."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.delayproxy")
    parser.add_argument("target", type=_address, help="127.0.0.1:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument(
        "--buffer", type=int, default=DEFAULT_BUFFER, help="bytes held per direction at most"
    )
    args = parser.parse_args(argv)
    proxy = DelayProxy(args.target, args.delay_ms / 1000, args.buffer)
    print(f"delay proxy on {proxy.address}", flush=True)
    proxy.serve_forever()


if __name__ == "__main__":
    main()
