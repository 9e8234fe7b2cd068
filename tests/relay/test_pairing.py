"""A real relay on a free port pairs the two sides of a session and refuses every other ticket."""

import os
import socket
import threading
import time

import pytest
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.common.relay_wire import CLOCK_SKEW, RelayRefusedError, hello, join_relay
from napshare.relay.caps import RETRY_AFTER_SECONDS
from napshare.v1 import relay_pb2

from tests.support.relays import (
    DOWNLOADING,
    MIB,
    SERVING,
    TRACKER,
    new_session,
    read_all,
    send_and_close,
    ticket,
)
from tests.support.waiting import wait_until


def refusal(relay, signed: bytes) -> relay_pb2.RelayAnswer:
    with pytest.raises(RelayRefusedError) as caught:
        relay.join(signed)
    return caught.value.answer


def sessions(running) -> tuple[int, int]:
    stats = running.relay.stats()
    return stats.paired, stats.unpaired


def test_the_two_sides_of_a_session_are_paired_and_bytes_cross_both_ways(start_relay) -> None:
    running = start_relay()
    serving, downloading = running.pair()
    upload, download = os.urandom(16 * MIB + 5), os.urandom(2 * MIB + 3)

    writers = [send_and_close(serving, upload), send_and_close(downloading, download)]
    got_downloading = read_all(downloading)
    got_serving = read_all(serving)
    for writer in writers:
        writer.join()
    serving.close()
    downloading.close()

    assert got_downloading == upload
    assert got_serving == download
    wait_until(lambda: running.relay.stats().ended == {"closed": 1})
    stats = running.relay.stats()
    assert (stats.paired, stats.unpaired, stats.waiting, stats.bytes) == (
        0,
        0,
        0,
        len(upload) + len(download),
    )


def test_the_paired_answer_gives_the_sessions_caps(start_relay) -> None:
    running = start_relay(session_bytes=5 * MIB, session_seconds=90)
    session = new_session()
    answers: list[relay_pb2.RelayAnswer] = []

    def serve() -> None:
        sock, answer = join_relay(running.address, ticket(session, SERVING), 10)
        answers.append(answer)
        sock.close()

    thread = threading.Thread(target=serve)
    thread.start()
    wait_until(lambda: running.relay.stats().waiting == 1)
    sock, answer = join_relay(running.address, ticket(session, DOWNLOADING), 10)
    sock.close()
    thread.join(10)

    assert answer == answers[0]
    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_PAIRED
    assert (answer.max_bytes, answer.max_seconds) == (5 * MIB, 90)


def test_either_side_may_come_first(start_relay) -> None:
    running = start_relay()
    session = new_session()
    got: list[bytes] = []

    def download() -> None:
        with running.join(ticket(session, DOWNLOADING)) as sock:
            got.append(read_all(sock))

    thread = threading.Thread(target=download)
    thread.start()
    wait_until(lambda: running.relay.stats().waiting == 1)
    with running.join(ticket(session, SERVING)) as serving:
        serving.sendall(b"served first")
        serving.shutdown(socket.SHUT_WR)
        thread.join(10)

    assert got == [b"served first"]


def test_a_ticket_with_a_bad_signature_is_refused(start_relay) -> None:
    running = start_relay()
    signed = bytearray(ticket(new_session(), SERVING))
    signed[-1] ^= 0x01  # the signature's last byte

    answer = refusal(running, bytes(signed))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    assert running.relay.stats().refused == {"ticket_invalid": 1}


def test_a_ticket_of_a_tracker_the_relay_does_not_trust_is_refused(start_relay) -> None:
    stranger = make_identity(TRACKER_NAME)
    running = start_relay(trusted=[stranger.certificate_der])

    answer = refusal(running, ticket(new_session(), SERVING))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    assert "not signed by a tracker this relay trusts" in answer.message


def test_a_relay_trusting_several_trackers_pairs_tickets_of_each(start_relay) -> None:
    other = make_identity(TRACKER_NAME)
    running = start_relay(trusted=[other.certificate_der, TRACKER.certificate_der])
    serving, downloading = running.pair(signer=other)
    serving.close()
    downloading.close()
    serving, downloading = running.pair()
    serving.close()
    downloading.close()

    wait_until(lambda: running.relay.stats().ended == {"closed": 2})


def test_an_expired_ticket_is_refused_past_the_allowed_skew(start_relay) -> None:
    now = time.time()
    running = start_relay(clock=lambda: now)

    answer = refusal(running, ticket(new_session(), SERVING, expires_at=now - CLOCK_SKEW - 2))
    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_EXPIRED
    # Within the skew, a ticket just past its time still pairs.
    serving, downloading = running.pair(expires_at=now - CLOCK_SKEW + 2)
    serving.close()
    downloading.close()


def test_a_ticket_used_once_is_refused_the_second_time(start_relay) -> None:
    running = start_relay()
    session = new_session()
    serving_ticket = ticket(session, SERVING)
    serving, downloading = running.pair(session)
    serving.close()
    downloading.close()
    wait_until(lambda: running.relay.stats().ended == {"closed": 1})

    answer = refusal(running, serving_ticket)

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    assert "already shown" in answer.message
    assert running.relay.stats().waiting == 0


def test_a_second_ticket_of_the_side_already_waiting_is_refused_and_the_first_still_pairs(
    start_relay,
) -> None:
    running = start_relay()
    session = new_session()
    paired: list[socket.socket] = []
    thread = threading.Thread(target=lambda: paired.append(running.join(ticket(session, SERVING))))
    thread.start()
    wait_until(lambda: running.relay.stats().waiting == 1)

    answer = refusal(running, ticket(session, SERVING, serving_peer="198.51.100.1:1"))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    with running.join(ticket(session, DOWNLOADING)) as downloading:
        thread.join(10)
        paired[0].sendall(b"still the first")
        paired[0].close()
        assert read_all(downloading) == b"still the first"


def test_a_side_never_paired_is_answered_timeout_after_the_pairing_timeout(start_relay) -> None:
    running = start_relay(pairing_seconds=0.3)
    began = time.monotonic()

    answer = refusal(running, ticket(new_session(), SERVING))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_TIMEOUT
    assert time.monotonic() - began >= 0.3
    assert running.relay.stats().refused == {"timeout": 1}
    wait_until(lambda: running.relay.stats().waiting == 0)


def test_a_side_that_leaves_before_it_is_paired_frees_its_session(start_relay) -> None:
    running = start_relay(sessions=1)
    sock = socket.create_connection(running.address)
    sock.sendall(hello(ticket(new_session(), SERVING)))
    wait_until(lambda: sessions(running) == (0, 1))
    sock.close()
    wait_until(lambda: sessions(running) == (0, 0))

    serving, downloading = running.pair()  # the one session allowed is free again
    serving.close()
    downloading.close()
    assert running.relay.stats().refused == {"left": 1}


def test_a_full_relay_answers_full_with_a_time_to_ask_again(start_relay) -> None:
    running = start_relay(sessions=1, pairing_seconds=30)
    session = new_session()
    waiting = threading.Thread(target=lambda: running.join(ticket(session, SERVING)).close())
    waiting.start()
    wait_until(lambda: running.relay.stats().waiting == 1)

    other_session = new_session()
    other = ticket(other_session, SERVING, serving_peer="198.51.100.9:8776")
    answer = refusal(running, other)

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_FULL
    assert answer.retry_after_seconds == RETRY_AFTER_SECONDS
    running.join(ticket(session, DOWNLOADING)).close()  # the waiting session still pairs
    waiting.join(10)
    wait_until(lambda: sessions(running) == (0, 0))
    # The refused ticket was not used up: shown again once there is room, it is let in.
    waiting = threading.Thread(target=lambda: running.join(other).close())
    waiting.start()
    wait_until(lambda: sessions(running) == (0, 1))
    running.join(ticket(other_session, DOWNLOADING)).close()
    waiting.join(10)
    wait_until(lambda: running.relay.stats().ended == {"closed": 2})


def test_a_serving_peer_gets_no_more_sessions_than_its_cap(start_relay) -> None:
    running = start_relay(sessions_per_peer=2)
    pairs = [running.pair() for _ in range(2)]

    answer = refusal(running, ticket(new_session(), DOWNLOADING))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_FULL
    assert "this peer" in answer.message
    other_peer = running.pair(serving_peer="198.51.100.9:8776")  # another peer is let in
    for sock in [*other_peer, *pairs[0]]:
        sock.close()
    wait_until(lambda: running.relay.stats().paired == 1)
    running.pair()[0].close()  # a slot of the first peer is free again
    for sock in pairs[1]:
        sock.close()


def test_connections_waiting_past_the_per_address_cap_are_answered_full(start_relay) -> None:
    running = start_relay(waiting_per_address=2)
    idle = [socket.create_connection(running.address) for _ in range(2)]
    wait_until(lambda: running.relay.stats().waiting == 2)

    answer = refusal(running, ticket(new_session(), SERVING))

    assert answer.code == relay_pb2.RELAY_ANSWER_CODE_FULL
    assert answer.retry_after_seconds == RETRY_AFTER_SECONDS
    for sock in idle:
        sock.close()
    wait_until(lambda: running.relay.stats().waiting == 0)
    serving, downloading = running.pair()
    serving.close()
    downloading.close()


def test_connections_waiting_past_the_relays_cap_are_answered_full(start_relay) -> None:
    running = start_relay(waiting=3, waiting_per_address=100)
    idle = [socket.create_connection(running.address) for _ in range(3)]
    wait_until(lambda: running.relay.stats().waiting == 3)

    assert refusal(running, ticket(new_session(), SERVING)).code == (
        relay_pb2.RELAY_ANSWER_CODE_FULL
    )
    for sock in idle:
        sock.close()


def test_stop_ends_every_session_and_drops_the_waiting(start_relay) -> None:
    running = start_relay()
    serving, downloading = running.pair()
    waiting = socket.create_connection(running.address)
    wait_until(lambda: running.relay.stats().waiting == 1)

    running.relay.stop()

    assert read_all(serving) == b""
    assert read_all(downloading) == b""
    assert read_all(waiting) == b""
    assert running.relay.stats().ended == {"stopped": 1}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(running.address, timeout=5)
