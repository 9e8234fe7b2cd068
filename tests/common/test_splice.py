"""Two real TCP connections on loopback joined by a Splice: bytes, half-closes, caps, stop."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from napshare.common.ratelimit import TokenBucket
from napshare.common.splice import Splice, SpliceCaps, SpliceEnd

MIB = 1024 * 1024


def _connected_pair() -> tuple[socket.socket, socket.socket]:
    """A client socket and the server side of its connection, on a free loopback port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


@pytest.fixture
def ends() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """left ↔ a ... b ↔ right: `a` and `b` are the sockets to splice."""
    left, a = _connected_pair()
    b, right = _connected_pair()
    yield left, a, b, right
    for sock in (left, a, b, right):
        sock.close()


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def _send_and_close(sock: socket.socket, data: bytes) -> threading.Thread:
    def run() -> None:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_bytes_cross_both_ways_intact_and_each_half_close_passes_through(ends) -> None:
    left, a, b, right = ends
    ended = []
    splice = Splice(a, b, on_end=ended.append).start()
    one, other = os.urandom(8 * MIB + 7), os.urandom(3 * MIB + 1)

    writers = [_send_and_close(left, one), _send_and_close(right, other)]
    got_right = _read_all(right)
    got_left = _read_all(left)
    for writer in writers:
        writer.join()

    assert got_right == one
    assert got_left == other
    assert splice.wait(5)
    assert splice.end is SpliceEnd.CLOSED
    assert splice.sent == [len(one), len(other)]
    assert ended == [splice]


def test_one_side_may_keep_answering_after_the_other_stopped_sending(ends) -> None:
    left, a, b, right = ends
    splice = Splice(a, b).start()
    left.sendall(b"request")
    left.shutdown(socket.SHUT_WR)

    assert _read_all(right) == b"request"  # the half-close reached the far side
    right.sendall(b"answer after the half-close")
    right.shutdown(socket.SHUT_WR)
    assert _read_all(left) == b"answer after the half-close"
    assert splice.wait(5)


def test_a_direction_past_its_byte_cap_ends_the_splice_after_exactly_the_cap(ends) -> None:
    left, a, b, right = ends
    splice = Splice(a, b, SpliceCaps(max_bytes=MIB + 3)).start()
    writer = threading.Thread(target=lambda: _send_quietly(left, os.urandom(4 * MIB)))
    writer.start()

    assert len(_read_all(right)) == MIB + 3
    assert splice.wait(5)
    assert splice.end is SpliceEnd.MAX_BYTES
    writer.join()


def test_the_time_cap_ends_an_idle_splice(ends) -> None:
    left, a, b, right = ends
    splice = Splice(a, b, SpliceCaps(max_seconds=0.3)).start()

    assert splice.wait(10)
    assert splice.end is SpliceEnd.MAX_SECONDS
    assert left.recv(10) == b""  # both far ends see the connection end
    assert right.recv(10) == b""


def test_stop_ends_both_connections(ends) -> None:
    left, a, b, right = ends
    splice = Splice(a, b).start()
    left.sendall(b"x")
    assert right.recv(1) == b"x"

    splice.stop()

    assert splice.end is SpliceEnd.STOPPED
    assert left.recv(10) == b""
    assert right.recv(10) == b""


def test_a_rate_cap_holds_the_bytes_back(ends) -> None:
    left, a, b, right = ends
    rate = 4 * MIB
    Splice(a, b, SpliceCaps(rate=TokenBucket(rate))).start()
    data = os.urandom(3 * MIB)

    start = time.monotonic()
    writer = _send_and_close(left, data)
    assert _read_all(right) == data
    elapsed = time.monotonic() - start
    writer.join()

    # The bucket starts full (a quarter second of the rate), the rest comes at the rate.
    assert elapsed >= (len(data) - rate / 4) / rate * 0.9


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the splice ends at its cap and closes the connection
        sock.sendall(data)


def test_a_splice_that_gets_no_pipe_ends_and_closes_both_connections() -> None:
    # In a child whose open-file limit leaves room for one pipe: one direction gets it, the
    # other gets EMFILE, and the splice must still end rather than hold both connections.
    script = """
import os, resource, socket
from napshare.common.splice import Splice, SpliceEnd

def pair():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted

left, a = pair()
b, right = pair()
used = len(os.listdir("/proc/self/fd"))
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 2, hard))
splice = Splice(a, b).start()
assert splice.wait(5), "the splice never ended"
assert splice.end is SpliceEnd.CLOSED, splice.end
assert left.recv(10) == b"" and right.recv(10) == b""
print("ended")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.stdout == "ended\n", done.stderr
