"""Certificates like a napshare identity's, changed in one way, for tests of the identity rules."""

import datetime
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from napshare.common.identity import PEER_NAME, Identity

NOW = time.time()
DAY = datetime.timedelta(days=1)


def certificate(
    *,
    key: object = None,
    ca: bool | None = False,
    before: datetime.timedelta = -DAY,
    after: datetime.timedelta = 365 * DAY,
    critical_unknown: bool = False,
    issuer: str = PEER_NAME,
    signer: object = None,
) -> bytes:
    """A certificate (DER) like napshare's, changed in one way."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PEER_NAME)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + before)
        .not_valid_after(now + after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PEER_NAME)]), critical=False)
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
    if critical_unknown:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
    cert = builder.sign(signer or key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER)


def identity_of(key: ec.EllipticCurvePrivateKey, certificate_der: bytes) -> Identity:
    """An Identity for `key` and its certificate, however odd, to sign Joins with."""
    cert = x509.load_der_x509_certificate(certificate_der)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Identity(key, cert.public_bytes(serialization.Encoding.PEM), certificate_der, key_pem)
