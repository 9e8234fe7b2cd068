"""The relay's wire (protos/napshare/v1/relay.proto): hello, answer, signed one-time tickets.

A tracker signs a RelayTicket for each side of a session (`sign_ticket`); each side dials the
relay and shows it (`join_relay`); the relay checks it (`verify_ticket`, `HelloReader`) and
answers. After RELAY_ANSWER_CODE_PAIRED the connection carries the other side's bytes. No
gRPC here: the relay speaks this framing over plain TCP.
"""

from __future__ import annotations

import functools
import socket
import struct
import time
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError
from napshare.common.address import parse_address
from napshare.common.identity import Identity
from napshare.v1 import relay_pb2

MAGIC = b"NAPSHARE-RELAY/1\n"  # what each side sends first
LENGTH = struct.Struct(">H")  # the two-byte big-endian length before a ticket or an answer
MAX_TICKET_BYTES = 1024  # the largest SignedRelayTicket a relay reads (the protocol's limit)
MAX_ANSWER_BYTES = 1024  # the largest RelayAnswer a side reads; the relay's are ~100 bytes
SESSION_BYTES = 16  # a session's random id, the same in both of its tickets
TICKET_SECONDS = 60  # how long a tracker's ticket may be shown (its expires_at - now)
CLOCK_SKEW = 30  # seconds a relay allows between its clock and the tracker's, either way
SIDES = (relay_pb2.RELAY_SIDE_SERVING, relay_pb2.RELAY_SIDE_DOWNLOADING)
_CONTEXT = b"napshare.v1 RelayTicket\0"  # what a ticket's signature covers, before the ticket


class TicketError(Exception):
    """A ticket the relay refuses: `code` is the RelayAnswerCode to answer, str() the message."""

    def __init__(self, code: relay_pb2.RelayAnswerCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class HelloError(Exception):
    """Bytes that are not a relay hello (wrong magic, a ticket over MAX_TICKET_BYTES)."""


class RelayRefusedError(Exception):
    """The relay answered anything but PAIRED; `answer` says what and, if full, when to retry."""

    def __init__(self, answer: relay_pb2.RelayAnswer) -> None:
        name = relay_pb2.RelayAnswerCode.Name(answer.code) if _known(answer.code) else "UNKNOWN"
        super().__init__(f"the relay refused ({name}): {answer.message}")
        self.answer = answer


class RelayProtocolError(ConnectionError):
    """The relay's answer is not one (too long, or not a RelayAnswer)."""


def sign_ticket(identity: Identity, ticket: relay_pb2.RelayTicket) -> bytes:
    """`ticket` signed by `identity` (a tracker's): a serialized SignedRelayTicket."""
    data = ticket.SerializeToString()
    signed = relay_pb2.SignedRelayTicket(ticket=data, signature=identity.sign(_CONTEXT + data))
    return signed.SerializeToString()


def verify_ticket(
    data: bytes, trusted_certificates: Sequence[bytes], now: float
) -> relay_pb2.RelayTicket:
    """The RelayTicket in `data` (a serialized SignedRelayTicket), if one of
    `trusted_certificates` (DER) signed it, it names a session and a side, and it is still
    valid at `now` (Unix seconds) within CLOCK_SKEW.

    Raises TicketError: TICKET_EXPIRED for a ticket past its time, TICKET_INVALID for
    anything else (too long, malformed, signed by no trusted tracker, no side, a session not
    16 bytes, or an expiry further ahead than a tracker ever gives).
    """
    invalid = relay_pb2.RELAY_ANSWER_CODE_TICKET_INVALID
    if len(data) > MAX_TICKET_BYTES:
        raise TicketError(invalid, f"the ticket is over {MAX_TICKET_BYTES} bytes")
    try:
        signed = relay_pb2.SignedRelayTicket.FromString(data)
    except DecodeError:
        raise TicketError(invalid, "the ticket is not a SignedRelayTicket") from None
    message = _CONTEXT + signed.ticket
    if not any(_signed_by(der, signed.signature, message) for der in trusted_certificates):
        raise TicketError(invalid, "the ticket is not signed by a tracker this relay trusts")
    try:
        ticket = relay_pb2.RelayTicket.FromString(signed.ticket)
    except DecodeError:
        raise TicketError(invalid, "the signed ticket is not a RelayTicket") from None
    if len(ticket.session) != SESSION_BYTES:
        raise TicketError(invalid, f"the ticket's session is not {SESSION_BYTES} bytes")
    if ticket.side not in SIDES:
        raise TicketError(invalid, "the ticket is for no side")
    if ticket.expires_at + CLOCK_SKEW < now:
        raise TicketError(
            relay_pb2.RELAY_ANSWER_CODE_TICKET_EXPIRED,
            "the ticket has expired: ask the tracker for a new one",
        )
    if ticket.expires_at > now + TICKET_SECONDS + CLOCK_SKEW:
        raise TicketError(invalid, f"the ticket expires more than {TICKET_SECONDS} s ahead")
    return ticket


def trusted_key(certificate_der: bytes) -> ec.EllipticCurvePublicKey:
    """The ECDSA key of a tracker's certificate (DER); ValueError if it holds none."""
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the certificate's key is not an ECDSA key")
    return key


def hello(signed_ticket: bytes) -> bytes:
    """What a side sends the relay: the magic, the ticket's length, the ticket."""
    if len(signed_ticket) > MAX_TICKET_BYTES:
        raise ValueError(f"a relay ticket is at most {MAX_TICKET_BYTES} bytes")
    return MAGIC + LENGTH.pack(len(signed_ticket)) + signed_ticket


def answer_bytes(answer: relay_pb2.RelayAnswer) -> bytes:
    """What the relay sends a side: the answer's length, the answer."""
    data = answer.SerializeToString()
    return LENGTH.pack(len(data)) + data


class HelloReader:
    """Reads one hello from bytes as they come, never past its end (what follows is relayed).

    `wants()` is how many bytes to read next (never more than the hello has left); `feed`
    takes them and raises HelloError as soon as they cannot be a hello; `ticket` is the
    signed ticket once the hello is complete, else None.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None
        self.ticket: bytes | None = None

    def wants(self) -> int:
        """Bytes to read next: 0 once the hello is complete."""
        if self.ticket is not None:
            return 0
        header = len(MAGIC) + LENGTH.size
        if self._length is None:
            return header - len(self._buffer)
        return header + self._length - len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Take `data` (at most wants() bytes)."""
        if len(data) > self.wants():
            raise ValueError("fed more than the hello has left")
        self._buffer += data
        magic = bytes(self._buffer[: len(MAGIC)])
        if not MAGIC.startswith(magic):
            raise HelloError("not a napshare relay hello")
        if self._length is None and len(self._buffer) == len(MAGIC) + LENGTH.size:
            (self._length,) = LENGTH.unpack_from(self._buffer, len(MAGIC))
            if self._length > MAX_TICKET_BYTES:
                raise HelloError(f"the ticket is over {MAX_TICKET_BYTES} bytes")
        if self._length is not None and self.wants() == 0:
            self.ticket = bytes(self._buffer[len(MAGIC) + LENGTH.size :])


def join_relay(
    address: tuple[str, int], signed_ticket: bytes, timeout: float
) -> tuple[socket.socket, relay_pb2.RelayAnswer]:
    """Dial the relay, show the ticket and wait, all within `timeout` seconds, for PAIRED.

    Returns the connection, now carrying the other side's bytes (blocking, no timeout), and
    the relay's answer (its caps). Raises RelayRefusedError for any other answer, and
    OSError when the relay cannot be reached, does not answer in time, closes the connection
    or answers with something that is not a RelayAnswer (RelayProtocolError).
    """
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(hello(signed_ticket))
        (length,) = LENGTH.unpack(_read_exactly(sock, LENGTH.size, deadline))
        if length > MAX_ANSWER_BYTES:
            raise RelayProtocolError(f"the relay's answer is over {MAX_ANSWER_BYTES} bytes")
        try:
            answer = relay_pb2.RelayAnswer.FromString(_read_exactly(sock, length, deadline))
        except DecodeError:
            raise RelayProtocolError("the relay's answer is not a RelayAnswer") from None
        if answer.code != relay_pb2.RELAY_ANSWER_CODE_PAIRED:
            raise RelayRefusedError(answer)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock, answer


def relay_target(relay_address: str, tracker_host: str) -> tuple[str, int]:
    """The (host, port) to dial for a Connect's `relay_address`; an empty host (`:1100`) is
    the tracker's own, `tracker_host` as the caller dialled it. InvalidAddressError if bad.
    """
    if relay_address.startswith(":"):
        _host, port = parse_address(f"127.0.0.1{relay_address}")
        return tracker_host.strip("[]"), port
    return parse_address(relay_address)


def _read_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the relay did not answer in time")
        sock.settimeout(left)
        data = sock.recv(count - len(chunks))
        if not data:
            raise ConnectionResetError("the relay closed the connection before answering")
        chunks += data
    return bytes(chunks)


def _known(code: int) -> bool:
    return code in relay_pb2.RelayAnswerCode.values()


@functools.lru_cache(maxsize=64)
def _key(certificate_der: bytes) -> ec.EllipticCurvePublicKey | None:
    try:
        return trusted_key(certificate_der)
    except ValueError:
        return None


def _signed_by(certificate_der: bytes, signature: bytes, message: bytes) -> bool:
    key = _key(certificate_der)
    if key is None:
        return False
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
