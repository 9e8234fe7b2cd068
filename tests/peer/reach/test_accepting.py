"""The reach listeners' accept loop: it outlives running out of file descriptors, and it closes
connections beyond its slots."""

from __future__ import annotations

import os
import queue
import resource
import socket
import threading
import time

import pytest
from napshare.peer.reach.accepting import RESOURCE_PAUSE, accept_bounded


def _serve(slots: int) -> tuple[socket.socket, queue.Queue[socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    handled: queue.Queue[socket.socket] = queue.Queue()
    threading.Thread(
        target=accept_bounded,
        args=(listener, threading.BoundedSemaphore(slots), handled.put, "test-accept"),
        daemon=True,
    ).start()
    return listener, handled


def test_the_loop_accepts_again_after_the_process_ran_out_of_descriptors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener, handled = _serve(slots=4)
    client = socket.socket()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
        while True:  # take every free number below the limit
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        client.connect(listener.getsockname())  # the kernel queues it; accept() gets EMFILE
        time.sleep(RESOURCE_PAUSE * 3)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "Too many open files" in caplog.text
    accepted = handled.get(timeout=10)
    assert accepted.getpeername() == client.getsockname()
    accepted.close()
    client.close()
    listener.close()


def test_connections_beyond_the_slots_are_closed() -> None:
    listener, handled = _serve(slots=1)
    first = socket.create_connection(listener.getsockname())
    kept = handled.get(timeout=10)
    second = socket.create_connection(listener.getsockname())
    second.settimeout(10)
    assert second.recv(1) == b""
    assert handled.empty()
    for sock in (first, kept, second, listener):
        sock.close()
