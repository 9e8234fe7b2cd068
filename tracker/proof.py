"""Join's proof of identity: the certificate's key signed this Join, for this tracker, lately."""

import time
from collections.abc import Callable

from napshare.common import reasons
from napshare.common.identity import (
    JOIN_CLOCK_SKEW,
    ProofError,
    check_peer_certificate,
    join_message,
    verify_join,
)
from napshare.tracker.errors import InvalidRequestError, ProofInvalidError


class JoinProof:
    """Checks Joins sent to a tracker of identity `tracker` ("" when it serves plain text)."""

    def __init__(self, tracker: str, *, clock: Callable[[], float] = time.time) -> None:
        self.tracker = tracker
        self._clock = clock

    def identity(
        self, certificate: bytes, signature: bytes, signed_at: int, host: str, port: int
    ) -> str:
        """The fingerprint of `certificate` if the rest proves its key signed this Join.

        Raises InvalidRequestError (CERTIFICATE_INVALID) or ProofInvalidError.
        """
        try:
            check_peer_certificate(certificate, self._clock())
        except ProofError as error:
            raise _bad_certificate(str(error)) from None
        if abs(self._clock() - signed_at) > JOIN_CLOCK_SKEW:
            raise ProofInvalidError(
                f"signed_at {signed_at} is more than {JOIN_CLOCK_SKEW} s from the tracker's "
                "clock; check this machine's clock and sign the Join again"
            )
        message = join_message(self.tracker, host, port, signed_at)
        try:
            return verify_join(certificate, signature, message)
        except ProofError as error:
            if "ECDSA" in str(error):
                raise _bad_certificate(str(error)) from None
            raise ProofInvalidError(
                f"{error}: sign the Join for tracker {self.tracker or '(plain text)'}"
            ) from None


def _bad_certificate(why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"certificate: {why}", reasons.CERTIFICATE_INVALID, {"field": "certificate"}
    )
