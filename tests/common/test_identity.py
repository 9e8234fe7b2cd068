"""The identity rules a peer's certificate must meet before anyone trusts it."""

import datetime
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from napshare.common.identity import (
    JOIN_CLOCK_SKEW,
    PEER_NAME,
    ProofError,
    check_peer_certificate,
    make_identity,
)

from tests.support.certificates import DAY, NOW, certificate


def test_napshare_s_own_certificate_passes_and_comes_back_as_pem() -> None:
    identity = make_identity(PEER_NAME)
    assert check_peer_certificate(identity.certificate_der, NOW) == identity.certificate_pem


def test_a_certificate_without_basic_constraints_passes() -> None:
    assert check_peer_certificate(certificate(ca=None), NOW).startswith(b"-----BEGIN")


def test_a_certificate_valid_from_within_the_clock_skew_passes() -> None:
    soon = datetime.timedelta(seconds=JOIN_CLOCK_SKEW // 2)
    assert check_peer_certificate(certificate(before=soon), NOW)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: certificate(ca=True), "CA:TRUE"),
        (lambda: certificate(before=-3 * DAY, after=-DAY), "expired"),
        (lambda: certificate(before=DAY, after=3 * DAY), "not valid before"),
        (lambda: certificate(key=ec.generate_private_key(ec.SECP384R1())), "secp384r1"),
        (lambda: certificate(key=rsa.generate_private_key(65537, 2048)), "not an ECDSA key"),
        (lambda: certificate(critical_unknown=True), "1.3.6.1.4.1.99999.1"),
        (lambda: certificate(issuer="someone else"), "not self-signed"),
        (
            lambda: certificate(signer=ec.generate_private_key(ec.SECP256R1())),
            "signature is not its own key's",
        ),
        (lambda: b"\x30" * 10, "not a DER X.509 certificate"),
        (lambda: b"\x30" * 3000, "over 2048 bytes"),
    ],
    ids=[
        "a CA",
        "expired",
        "not yet valid",
        "another curve",
        "an RSA key",
        "an unknown critical extension",
        "another issuer",
        "signed by another key",
        "not a certificate",
        "too big",
    ],
)
def test_a_certificate_the_identity_rules_do_not_allow_is_refused_with_its_reason(
    make: Callable[[], bytes], why: str
) -> None:
    with pytest.raises(ProofError, match=why):
        check_peer_certificate(make(), NOW)
