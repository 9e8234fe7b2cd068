"""The relay's wire: tickets signed and checked, hellos read byte by byte, join_relay's answers."""

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.common.relay_wire import (
    CLOCK_SKEW,
    MAGIC,
    MAX_TICKET_BYTES,
    TICKET_SECONDS,
    HelloError,
    HelloReader,
    RelayProtocolError,
    RelayRefusedError,
    TicketError,
    answer_bytes,
    hello,
    join_relay,
    relay_target,
    sign_ticket,
    verify_ticket,
)
from napshare.v1 import relay_pb2

TRACKER = make_identity(TRACKER_NAME)
OTHER_TRACKER = make_identity(TRACKER_NAME)
NOW = 1_900_000_000.0
INVALID = relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID


def ticket(**fields: object) -> relay_pb2.RelayTicket:
    values: dict[str, object] = {
        "session": b"s" * 16,
        "side": relay_pb2.RELAY_SIDE_SERVING,
        "expires_at": int(NOW) + TICKET_SECONDS,
        "serving_peer": "203.0.113.20:8776",
        "downloader": "198.51.100.7",
    }
    values.update(fields)
    return relay_pb2.RelayTicket(**values)  # type: ignore[arg-type]


def refused(data: bytes, trusted: list[bytes] | None = None, now: float = NOW) -> TicketError:
    with pytest.raises(TicketError) as caught:
        verify_ticket(data, [TRACKER.certificate_der] if trusted is None else trusted, now)
    return caught.value


def test_a_ticket_signed_by_a_trusted_tracker_verifies_to_what_was_signed() -> None:
    signed = sign_ticket(TRACKER, ticket())

    assert verify_ticket(signed, [TRACKER.certificate_der], NOW) == ticket()
    # Any of several trusted trackers will do.
    trusted = [OTHER_TRACKER.certificate_der, TRACKER.certificate_der]
    assert verify_ticket(signed, trusted, NOW) == ticket()
    assert len(signed) < 300  # well under MAX_TICKET_BYTES


def test_a_ticket_of_a_tracker_not_trusted_is_invalid() -> None:
    error = refused(sign_ticket(OTHER_TRACKER, ticket()))

    assert error.code == INVALID
    assert "not signed by a tracker this relay trusts" in str(error)
    assert refused(sign_ticket(TRACKER, ticket()), trusted=[]).code == INVALID


def test_a_changed_ticket_or_signature_is_invalid() -> None:
    signed = relay_pb2.SignedRelayTicket.FromString(sign_ticket(TRACKER, ticket()))
    other_side = ticket(side=relay_pb2.RELAY_SIDE_DOWNLOADING).SerializeToString()
    forged = relay_pb2.SignedRelayTicket(ticket=other_side, signature=signed.signature)
    assert refused(forged.SerializeToString()).code == INVALID

    broken = bytearray(signed.signature)
    broken[-1] ^= 1
    tampered = relay_pb2.SignedRelayTicket(ticket=signed.ticket, signature=bytes(broken))
    assert refused(tampered.SerializeToString()).code == INVALID
    garbage = relay_pb2.SignedRelayTicket(ticket=signed.ticket, signature=b"not DER")
    assert refused(garbage.SerializeToString()).code == INVALID


def test_a_signature_over_the_ticket_without_the_context_is_invalid() -> None:
    data = ticket().SerializeToString()
    bare = relay_pb2.SignedRelayTicket(ticket=data, signature=TRACKER.sign(data))

    assert refused(bare.SerializeToString()).code == INVALID


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff" * 40, "not a SignedRelayTicket"),
        (b"\x0a" + b"\x00" * (MAX_TICKET_BYTES + 1), f"over {MAX_TICKET_BYTES} bytes"),
    ],
)
def test_bytes_that_are_no_ticket_are_invalid(data: bytes, words: str) -> None:
    error = refused(data)

    assert error.code == INVALID
    assert words in str(error)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"side": relay_pb2.RELAY_SIDE_UNSPECIFIED}, "for no side"),
        ({"side": 7}, "for no side"),
        ({"session": b"short"}, "session is not 16 bytes"),
        ({"session": b""}, "session is not 16 bytes"),
        ({"expires_at": int(NOW) + TICKET_SECONDS + CLOCK_SKEW + 1}, "ahead"),
    ],
)
def test_a_signed_ticket_without_a_session_a_side_or_a_sane_expiry_is_invalid(
    fields: dict[str, object], words: str
) -> None:
    error = refused(sign_ticket(TRACKER, ticket(**fields)))

    assert error.code == INVALID
    assert words in str(error)


def test_a_ticket_expires_after_its_time_and_the_allowed_skew() -> None:
    signed = sign_ticket(TRACKER, ticket(expires_at=int(NOW)))

    assert verify_ticket(signed, [TRACKER.certificate_der], NOW + CLOCK_SKEW).session
    error = refused(signed, now=NOW + CLOCK_SKEW + 1)
    assert error.code == relay_pb2.RELAY_ANSWER_CODE_TICKET_EXPIRED
    assert "expired" in str(error)


def test_a_trusted_certificate_that_is_no_certificate_trusts_nothing() -> None:
    assert refused(sign_ticket(TRACKER, ticket()), trusted=[b"junk"]).code == INVALID


def test_a_hello_fed_one_byte_at_a_time_yields_its_ticket_and_asks_for_no_byte_more() -> None:
    signed = sign_ticket(TRACKER, ticket())
    data = hello(signed) + b"relayed bytes that follow"
    reader = HelloReader()
    fed = 0
    while reader.wants():
        reader.feed(data[fed : fed + 1])
        fed += 1

    assert reader.ticket == signed
    assert data[fed:] == b"relayed bytes that follow"
    with pytest.raises(ValueError, match="more than the hello"):
        reader.feed(b"x")


def test_a_hello_read_in_the_chunks_it_asks_for_takes_two_reads() -> None:
    signed = sign_ticket(TRACKER, ticket())
    data = hello(signed)
    reader = HelloReader()
    reads = 0
    while want := reader.wants():
        reader.feed(data[:want])
        data = data[want:]
        reads += 1

    assert (reader.ticket, reads) == (signed, 2)  # the header, then the ticket


def test_wrong_magic_is_refused_at_its_first_wrong_byte() -> None:
    reader = HelloReader()
    reader.feed(b"NAPSHARE")
    with pytest.raises(HelloError, match="not a napshare relay hello"):
        reader.feed(b"?")
    with pytest.raises(HelloError):
        HelloReader().feed(b"GET / HTTP/1.1\r\n")


def test_a_length_over_the_largest_ticket_is_refused_before_any_ticket_byte() -> None:
    reader = HelloReader()
    with pytest.raises(HelloError, match=f"over {MAX_TICKET_BYTES} bytes"):
        reader.feed(MAGIC + (MAX_TICKET_BYTES + 1).to_bytes(2, "big"))
    with pytest.raises(ValueError, match="at most"):
        hello(b"x" * (MAX_TICKET_BYTES + 1))


def test_an_empty_ticket_is_a_complete_hello() -> None:
    reader = HelloReader()
    reader.feed(MAGIC + b"\x00\x00")

    assert (reader.wants(), reader.ticket) == (0, b"")
    assert refused(b"").code == INVALID


# join_relay against a scripted relay on a free loopback port: it reads the hello and answers.

Script = Callable[[socket.socket, bytes], None]


@pytest.fixture
def scripted_relay() -> Iterator[Callable[[Script], tuple[str, int]]]:
    """scripted_relay(script): a one-connection relay that reads a hello, then runs script."""
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(script: Script) -> tuple[str, int]:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def run() -> None:
            conn, _ = server.accept()
            with conn:
                reader = HelloReader()
                while want := reader.wants():
                    reader.feed(conn.recv(want))
                assert reader.ticket is not None
                script(conn, reader.ticket)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return server.getsockname()[:2]

    yield start
    for server in servers:
        server.close()
    for thread in threads:
        thread.join(10)


def test_join_relay_returns_the_paired_connection_and_the_caps(scripted_relay) -> None:
    shown: list[bytes] = []

    def pair_and_echo(conn: socket.socket, signed: bytes) -> None:
        shown.append(signed)
        paired = relay_pb2.RelayAnswer(
            code=relay_pb2.RELAY_ANSWER_CODE_PAIRED, max_bytes=1 << 30, max_seconds=1800
        )
        conn.sendall(answer_bytes(paired))
        while data := conn.recv(65536):
            conn.sendall(data.upper())

    address = scripted_relay(pair_and_echo)
    signed = sign_ticket(TRACKER, ticket())
    sock, answer = join_relay(address, signed, timeout=10)
    with sock:
        assert sock.gettimeout() is None
        sock.sendall(b"raw bytes after paired")
        sock.shutdown(socket.SHUT_WR)
        echoed = b"".join(iter(lambda: sock.recv(65536), b""))

    assert shown == [signed]
    assert (answer.max_bytes, answer.max_seconds) == (1 << 30, 1800)
    assert echoed == b"RAW BYTES AFTER PAIRED"


def test_join_relay_raises_the_refusal_with_its_answer(scripted_relay) -> None:
    full = relay_pb2.RelayAnswer(
        code=relay_pb2.RELAY_ANSWER_CODE_FULL, message="full", retry_after_seconds=5
    )
    address = scripted_relay(lambda conn, _ticket: conn.sendall(answer_bytes(full)))

    with pytest.raises(RelayRefusedError) as caught:
        join_relay(address, sign_ticket(TRACKER, ticket()), timeout=10)

    assert caught.value.answer == full
    assert str(caught.value) == "the relay refused (RELAY_ANSWER_CODE_FULL): full"


def test_join_relay_gives_up_on_a_silent_relay_at_its_timeout(scripted_relay) -> None:
    release = threading.Event()
    address = scripted_relay(lambda _conn, _ticket: release.wait(10))
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            join_relay(address, sign_ticket(TRACKER, ticket()), timeout=0.5)
    finally:
        release.set()
    assert time.monotonic() - began < 5


def test_join_relay_raises_oserror_when_the_relay_hangs_up_or_talks_nonsense(
    scripted_relay,
) -> None:
    address = scripted_relay(lambda _conn, _ticket: None)
    with pytest.raises(ConnectionResetError):
        join_relay(address, sign_ticket(TRACKER, ticket()), timeout=10)

    address = scripted_relay(lambda conn, _ticket: conn.sendall(b"\xff\xff" + os.urandom(64)))
    with pytest.raises(RelayProtocolError, match="over"):
        join_relay(address, sign_ticket(TRACKER, ticket()), timeout=10)

    address = scripted_relay(lambda conn, _ticket: conn.sendall(b"\x00\x03\xff\xff\xff"))
    with pytest.raises(RelayProtocolError, match="not a RelayAnswer"):
        join_relay(address, sign_ticket(TRACKER, ticket()), timeout=10)


def test_join_relay_raises_oserror_when_nothing_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = server.getsockname()[:2]
    with pytest.raises(ConnectionRefusedError):
        join_relay(address, sign_ticket(TRACKER, ticket()), timeout=5)


@pytest.mark.parametrize(
    ("relay_address", "tracker_host", "target"),
    [
        (":1100", "203.0.113.1", ("203.0.113.1", 1100)),
        (":1100", "[2001:db8::1]", ("2001:db8::1", 1100)),
        ("198.51.100.9:4000", "203.0.113.1", ("198.51.100.9", 4000)),
        ("[2001:db8::9]:4000", "203.0.113.1", ("2001:db8::9", 4000)),
    ],
)
def test_an_empty_relay_host_means_the_trackers_own(
    relay_address: str, tracker_host: str, target: tuple[str, int]
) -> None:
    assert relay_target(relay_address, tracker_host) == target
