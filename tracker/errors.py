"""What can go wrong in the tracker's domain, as exceptions that know nothing of gRPC.

Each carries a stable `reason` (common.reasons) and a little `metadata` (which field, which
limit) for the ErrorInfo that tracker.status builds.
"""

from collections.abc import Mapping
from typing import ClassVar

from napshare.common import reasons


class TrackerError(Exception):
    """Base of every error the tracker reports to a caller."""

    default_reason: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        self.metadata: Mapping[str, str] = metadata or {}
        self.retry_delay = retry_delay  # seconds to wait before asking again (RetryInfo)


class InvalidRequestError(TrackerError):
    """Malformed input: a bad name, digest, size, address, search or file list."""

    def __init__(
        self, message: str, reason: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)


class UnauthenticatedError(TrackerError):
    """The token does not match the peer id."""

    default_reason = reasons.TOKEN_MISMATCH


class UnknownPeerError(TrackerError):
    """No registration for that peer id: never joined, left, or its lease ran out."""

    default_reason = reasons.PEER_NOT_REGISTERED


class CapacityError(TrackerError):
    """A registration would grow past the tracker's size limits."""

    default_reason = reasons.FILE_LIMIT_REACHED


class BusyError(TrackerError):
    """As many broad searches as allowed are running: the caller should ask again later."""

    default_reason = reasons.SEARCHES_BUSY


class ProofInvalidError(TrackerError):
    """A Join's signature does not prove the certificate's key signed this Join now."""

    default_reason = reasons.JOIN_SIGNATURE_INVALID


class JoinReplayedError(ProofInvalidError):
    """A signed Join whose nonce the tracker took already: a copy of an earlier Join."""

    default_reason = reasons.JOIN_REPLAYED


class AddressTakenError(TrackerError):
    """A live registration of another identity holds the address a Join claims."""

    default_reason = reasons.ADDRESS_TAKEN


class ServedByAnotherError(AddressTakenError):
    """The claimed address answers TLS with another certificate than the Join's."""

    default_reason = reasons.ADDRESS_SERVED_BY_ANOTHER


class StoreUnavailableError(TrackerError):
    """The store that holds the index (Redis) did not answer: the caller should ask again."""

    default_reason = reasons.STORE_UNAVAILABLE


class ChecksBusyError(TrackerError):
    """Every reachability check slot is busy: the caller should join again later."""

    default_reason = reasons.ADDRESS_CHECKS_BUSY


class ListenersFullError(TrackerError):
    """The tracker holds as many Listen streams as it allows."""

    default_reason = reasons.LISTENERS_FULL


class ListenReplacedError(TrackerError):
    """A newer Listen of the same peer took this stream's place."""

    default_reason = reasons.LISTEN_REPLACED


class NotListeningError(TrackerError):
    """Connect: the peer holds no Listen stream and has no address on the caller's network."""

    default_reason = reasons.PEER_NOT_LISTENING


class AnonymousPeerError(TrackerError):
    """Connect: the peer joined anonymously, so nothing could check who answers a dial."""

    default_reason = reasons.PEER_ANONYMOUS


class RelayUnavailableError(TrackerError):
    """Connect asked for a relay, and the tracker offers none."""

    default_reason = reasons.RELAY_UNAVAILABLE


class ConnectRateError(TrackerError):
    """The caller's IP address asked for more connections than the tracker allows per second."""

    default_reason = reasons.CONNECT_RATE_LIMITED


class DialsBusyError(TrackerError):
    """The peer already has as many dials pending as the tracker sends it."""

    default_reason = reasons.PEER_DIALS_BUSY


def not_registered(peer_id: str) -> UnknownPeerError:
    """The error for a call naming a peer that has no live registration."""
    return UnknownPeerError(
        f"peer {peer_id} is not registered (it never joined, left, or its lease ran out); "
        "call Join again"
    )


def unknown_contact(peer_id: str) -> UnknownPeerError:
    """The error for a Connect to a peer that has no live registration."""
    return UnknownPeerError(f"peer {peer_id} is not registered (it left, or its lease ran out)")


def wrong_token(peer_id: str) -> UnauthenticatedError:
    """The error for a call whose token is not that of `peer_id`'s registration."""
    return UnauthenticatedError(
        f"the token does not match peer {peer_id}; use the token of its latest Join"
    )


def address_taken(peer_id: str) -> AddressTakenError:
    """The error for a Join of an address that a live peer of another identity holds."""
    return AddressTakenError(
        f"address {peer_id} is registered by a live peer of another identity; it stays so "
        "until that peer leaves or its lease runs out"
    )


def joins_busy(retry_delay: float, limit: int) -> BusyError:
    """The error for a signed Join refused because the tracker remembers as many recent Joins
    (their nonces) as it may.
    """
    return BusyError(
        f"the tracker remembers {limit:,} recent Joins, as many as it may; join again in "
        f"{retry_delay:.0f} s",
        reason=reasons.JOINS_BUSY,
        metadata={"limit": str(limit), "flag": "--max-join-nonces"},
        retry_delay=retry_delay,
    )


def large_join_too_soon(retry_delay: float, files: int, interval: float) -> BusyError:
    """The error for a Join of `files` or more files from an address or identity that sent
    one less than `interval` seconds ago.
    """
    return BusyError(
        f"a Join of {files:,} files or more is taken once in {interval:g} s from one address "
        f"or identity; join again in {max(1.0, retry_delay):.0f} s",
        reason=reasons.LARGE_JOIN_TOO_SOON,
        metadata={"limit": f"{interval:g}", "flag": "--large-join-interval"},
        retry_delay=retry_delay,
    )


def join_in_progress(peer_id: str) -> BusyError:
    """The error for a Join of `peer_id` while a big Join of it is still being added."""
    return BusyError(
        f"a Join of {peer_id} is still being added to the index; join again in 1 s",
        reason=reasons.LARGE_JOIN_TOO_SOON,
        retry_delay=1.0,
    )


def join_replayed() -> JoinReplayedError:
    """The error for a signed Join whose nonce was taken before."""
    return JoinReplayedError(
        "this Join's nonce was taken before: it is a copy of an earlier Join. Sign a new one "
        "(napshare peers do, with a fresh nonce, at every Join)"
    )


def searches_busy(retry_delay: float) -> BusyError:
    """The error for a broad search refused because as many as allowed are running."""
    return BusyError(
        "the tracker is running as many broad searches as it allows; ask again "
        f"in {retry_delay:g} s, or add words that narrow the query",
        retry_delay=retry_delay,
    )
