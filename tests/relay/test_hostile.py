"""Hostile clients (garbage, a huge length, a hello byte by byte, a flood) are cut without harm."""

import contextlib
import os
import socket
import time

from napshare.common.relay_wire import LENGTH, MAGIC, MAX_TICKET_BYTES, hello
from napshare.v1 import relay_pb2

from tests.support.relays import MIB, SERVING, new_session, read_all, send_and_close, ticket
from tests.support.waiting import wait_until


def _answer_then_close(sock: socket.socket) -> relay_pb2.RelayAnswer:
    data = read_all(sock)
    (length,) = LENGTH.unpack_from(data)
    assert len(data) == LENGTH.size + length  # the answer, then the end: nothing else
    return relay_pb2.RelayAnswer.FromString(data[LENGTH.size :])


def _still_relays(running) -> None:
    serving, downloading = running.pair()
    data = os.urandom(MIB)
    writer = send_and_close(serving, data)
    assert read_all(downloading) == data
    writer.join(10)
    serving.close()
    downloading.close()


def test_bytes_that_are_not_the_magic_are_refused_at_once(start_relay) -> None:
    running = start_relay()
    with socket.create_connection(running.address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n")
        answer = _answer_then_close(sock)

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    assert answer.message == "not a napshare relay hello"
    assert running.relay.stats().refused == {"hello_malformed": 1}
    _still_relays(running)


def test_a_huge_length_is_refused_before_any_ticket_byte_is_read(start_relay) -> None:
    running = start_relay()
    with socket.create_connection(running.address) as sock:
        sock.sendall(MAGIC + LENGTH.pack(0xFFFF))
        answer = _answer_then_close(sock)

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    assert f"over {MAX_TICKET_BYTES} bytes" in answer.message
    _still_relays(running)


def test_a_ticket_that_is_no_ticket_is_refused(start_relay) -> None:
    running = start_relay()
    with socket.create_connection(running.address) as sock:
        sock.sendall(hello(os.urandom(300)))
        answer = _answer_then_close(sock)

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID


def test_a_hello_sent_byte_by_byte_is_cut_at_the_hello_timeout_while_others_are_relayed(
    start_relay,
) -> None:
    running = start_relay(hello_seconds=0.5)
    data = hello(ticket(new_session(), SERVING))
    with socket.create_connection(running.address) as slow:
        began = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            for byte in data:
                slow.sendall(bytes([byte]))
                sent += 1
                if sent == 3:
                    _still_relays(running)  # the slow one holds nobody up
                time.sleep(0.05)
        assert read_all(slow) == b""  # cut, no answer
        cut_after = time.monotonic() - began

    assert sent < len(data)
    assert cut_after >= 0.5
    wait_until(lambda: running.relay.stats().refused.get("hello_timeout") == 1)
    assert running.relay.stats().waiting == 0


def test_a_half_hello_then_a_close_leaves_nothing_behind(start_relay) -> None:
    running = start_relay()
    for _ in range(20):
        with socket.create_connection(running.address) as sock:
            sock.sendall(MAGIC[:5])
    wait_until(lambda: running.relay.stats().refused.get("left") == 20)
    assert running.relay.stats().waiting == 0


def test_a_flood_of_idle_connections_is_held_to_the_cap_and_the_relay_goes_on(
    start_relay,
) -> None:
    running = start_relay(waiting=50, waiting_per_address=50, hello_seconds=30)
    flood = [socket.create_connection(running.address) for _ in range(200)]
    try:
        wait_until(lambda: running.relay.stats().refused.get("full", 0) == 150)
        assert running.relay.stats().waiting == 50
    finally:
        for sock in flood:
            sock.close()
    wait_until(lambda: running.relay.stats().waiting == 0)
    _still_relays(running)
