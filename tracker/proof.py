"""Join's proof of identity: the certificate's key signed this whole Join, for this tracker,
lately, and never before (each nonce is taken once)."""

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from napshare.common import reasons
from napshare.common.identity import (
    JOIN_CLOCK_SKEW,
    MAX_JOIN_NONCE_BYTES,
    MIN_JOIN_NONCE_BYTES,
    JoinedFile,
    ProofError,
    check_peer_certificate,
    join_digest,
    join_message,
    verify_join,
)
from napshare.tracker.errors import InvalidRequestError, ProofInvalidError


class Nonces(Protocol):
    """Where the nonces of recent Joins are taken (an IndexStore)."""

    def take_nonce(self, identity: str, nonce: bytes, signed_at: int, now: float) -> None: ...


class SignedJoin(Protocol):
    """The fields of a JoinRequest that its proof covers."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def files(self) -> Sequence[JoinedFile]: ...
    @property
    def certificate(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...
    @property
    def signed_at(self) -> int: ...
    @property
    def local_addresses(self) -> Sequence[str]: ...
    @property
    def nonce(self) -> bytes: ...


class JoinProof:
    """Checks Joins sent to a tracker of identity `tracker` ("" when it serves plain text),
    taking their nonces in `nonces` (none taken when None: for tests of the signature alone).
    """

    def __init__(
        self,
        tracker: str,
        nonces: Nonces | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tracker = tracker
        self._nonces = nonces
        self._clock = clock

    def identity(self, join: SignedJoin) -> str:
        """The fingerprint of the Join's certificate if the rest proves its key signed this
        whole Join (its address, files and local addresses, its nonce) for this tracker,
        lately, and the nonce was never taken before (it is now).

        Raises InvalidRequestError (CERTIFICATE_INVALID), ProofInvalidError,
        JoinReplayedError or BusyError (JOINS_BUSY).
        """
        now = self._clock()
        try:
            check_peer_certificate(join.certificate, now)
        except ProofError as error:
            raise _bad_certificate(str(error)) from None
        if abs(now - join.signed_at) > JOIN_CLOCK_SKEW:
            raise ProofInvalidError(
                f"signed_at {join.signed_at} is more than {JOIN_CLOCK_SKEW} s from the "
                "tracker's clock; check this machine's clock and sign the Join again"
            )
        if not MIN_JOIN_NONCE_BYTES <= len(join.nonce) <= MAX_JOIN_NONCE_BYTES:
            raise ProofInvalidError(
                f"nonce has {len(join.nonce)} bytes, not {MIN_JOIN_NONCE_BYTES} to "
                f"{MAX_JOIN_NONCE_BYTES}: sign the Join with a fresh random nonce"
            )
        message = join_message(
            self.tracker,
            join.host,
            join.port,
            join.signed_at,
            nonce=join.nonce,
            digest=join_digest(join.files, join.local_addresses),
        )
        try:
            identity = verify_join(join.certificate, join.signature, message)
        except ProofError as error:
            if "ECDSA" in str(error):
                raise _bad_certificate(str(error)) from None
            raise ProofInvalidError(
                f"{error}: sign the whole Join, with its nonce, for tracker "
                f"{self.tracker or '(plain text)'}"
            ) from None
        if self._nonces is not None:
            self._nonces.take_nonce(identity, join.nonce, join.signed_at, now)
        return identity


def _bad_certificate(why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"certificate: {why}", reasons.CERTIFICATE_INVALID, {"field": "certificate"}
    )
