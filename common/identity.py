"""A napshare identity (an ECDSA P-256 key and its self-signed certificate) and Join's proof.

The identity of a peer or tracker is the SHA-256 of its certificate (DER), in hex. Peers prove
at Join that they hold their key by signing `join_message`; the tracker checks it with
`verify_join`. No gRPC here: common.tls turns identities into channel and server credentials.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from napshare.common.files import replace_at

# The name every peer's certificate holds (its subjectAltName), and that downloaders and the
# tracker's reachability check ask for: a peer is known by its certificate, not by a DNS name.
PEER_NAME = "napshare-peer"
# The name a tracker's own certificate holds; clients pin the certificate and ask for this name.
TRACKER_NAME = "napshare-tracker"
KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
MAX_FILE_BYTES = 64 * 1024  # an identity file larger than this is not one
# The largest certificate a JoinRequest may carry; napshare's own are about 400 bytes. Every
# search result carries its peer's, so a large one would swell every answer that lists it.
MAX_CERTIFICATE_BYTES = 2 * 1024
# How far a Join's signed time may be from the tracker's clock, either way, in seconds.
JOIN_CLOCK_SKEW = 300
JOIN_NONCE_BYTES = 16  # the random nonce a peer signs into each Join
MIN_JOIN_NONCE_BYTES = 16  # ... and what a tracker takes: from this many bytes
MAX_JOIN_NONCE_BYTES = 64  # to this many
_JOIN_CONTEXT = b"napshare.v1 Join\0"
# The critical extensions a napshare certificate may carry (make_identity writes the first).
_KNOWN_CRITICAL = frozenset(
    {
        x509.oid.ExtensionOID.BASIC_CONSTRAINTS,
        x509.oid.ExtensionOID.KEY_USAGE,
        x509.oid.ExtensionOID.EXTENDED_KEY_USAGE,
        x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_VALID_DAYS = 100 * 365


class IdentityError(Exception):
    """An identity file is missing a part, unreadable or not what napshare writes."""


class ProofError(Exception):
    """A Join's certificate or signature does not prove what it claims."""


@dataclass(frozen=True)
class Identity:
    """A private key and its certificate; `fingerprint` is who this is."""

    key: PrivateKeyTypes
    certificate_pem: bytes
    certificate_der: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the certificate (DER), 64 hex digits."""
        return fingerprint(self.certificate_der)

    def sign(self, message: bytes) -> bytes:
        """An ECDSA-SHA256 signature (DER) of `message`; IdentityError for a key not ECDSA."""
        if not isinstance(self.key, ec.EllipticCurvePrivateKey):
            raise IdentityError("only an ECDSA key can sign a Join")
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))


def fingerprint(certificate_der: bytes) -> str:
    """The identity a certificate stands for: its SHA-256, 64 lowercase hex digits."""
    return hashlib.sha256(certificate_der).hexdigest()


def certificate_pem(certificate_der: bytes) -> bytes:
    """`certificate_der` in PEM, as gRPC's root_certificates take it; ProofError if it is none."""
    return _load_der(certificate_der).public_bytes(serialization.Encoding.PEM)


def certificates_in(pem: bytes) -> list[bytes]:
    """The certificates (DER) of a PEM file, in order; IdentityError if it holds none."""
    try:
        found = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise IdentityError(f"no PEM certificate in it ({error})") from None
    return [cert.public_bytes(serialization.Encoding.DER) for cert in found]


def make_identity(name: str, extra_names: Iterable[str] = ()) -> Identity:
    """A new key and a self-signed certificate for `name` (PEER_NAME or TRACKER_NAME).

    `extra_names` (host names or IP literals) go into subjectAltName too, so that tools
    that check the host name they dialed (grpcurl -cacert) accept the certificate.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    for extra in dict.fromkeys(extra_names):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            alt_names.append(x509.DNSName(extra))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Identity(
        key,
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
        key_pem,
    )


def identity_from_pem(key_pem: bytes, cert_pem: bytes) -> Identity:
    """The identity of a PEM key and certificate (the first one of the file), checked to match.

    Any key type is accepted (a tracker's --tls-key may be RSA); only ECDSA keys can sign
    Joins. Raises IdentityError.
    """
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise IdentityError(f"the key is not an unencrypted PEM private key ({error})") from None
    ders = certificates_in(cert_pem)
    cert = x509.load_der_x509_certificate(ders[0])
    public = key.public_key()
    if cert.public_key() != public:
        raise IdentityError("the certificate is not the key's: they belong to different pairs")
    return Identity(key, cert_pem, ders[0], key_pem)


def load_or_create(
    directory: str, name: str, extra_names: Iterable[str] = (), *, parent_fd: int | None = None
) -> Identity:
    """The identity kept in `directory` (KEY_FILE and CERT_FILE), made there if it has none.

    The directory is made 0700 and the files 0600; neither is followed if it is a symlink.
    With `parent_fd`, `directory` is one name inside that open directory (so no component of
    the path above it is followed either). Raises IdentityError for files that are there but
    broken (one of them missing, say), or for a directory that is a symlink.
    """
    if parent_fd is None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    else:
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700, dir_fd=parent_fd)
    try:
        dir_fd = os.open(
            directory,
            os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
            dir_fd=parent_fd,
        )
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise IdentityError(f"{directory} is a symlink or not a folder") from None
        raise
    try:
        if os.fstat(dir_fd).st_mode & 0o077:
            try:
                os.fchmod(dir_fd, 0o700)  # made by someone or something else: owner-only now
            except OSError as error:
                raise IdentityError(f"cannot make it owner-only: {error.strerror}") from None
        key_pem = _read(dir_fd, KEY_FILE)
        cert_pem = _read(dir_fd, CERT_FILE)
        if key_pem is None and cert_pem is None:
            identity = make_identity(name, extra_names)
            _write(dir_fd, KEY_FILE, identity.key_pem)
            _write(dir_fd, CERT_FILE, identity.certificate_pem)  # last: a cert means a key
            return identity
        if key_pem is None or cert_pem is None:
            missing = KEY_FILE if key_pem is None else CERT_FILE
            raise IdentityError(f"{missing} is missing")
        identity = identity_from_pem(key_pem, cert_pem)
        if not isinstance(identity.key, ec.EllipticCurvePrivateKey):
            raise IdentityError(
                f"{KEY_FILE} is not an ECDSA key, and only ECDSA keys can sign a Join; "
                "delete the identity's files to make a new one"
            )
        return identity
    finally:
        os.close(dir_fd)


def _read(dir_fd: int, file_name: str) -> bytes | None:
    """The bytes of `file_name` in `dir_fd`, None if it does not exist; IdentityError if unfit."""
    try:
        fd = os.open(file_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise IdentityError(f"cannot open {file_name}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise IdentityError(f"{file_name} is over {MAX_FILE_BYTES} bytes")
    return data


def _write(dir_fd: int, file_name: str, data: bytes) -> None:
    """Write `file_name` whole, 0600, through a temporary name."""
    replace_at(dir_fd, file_name, data)


class JoinedFile(Protocol):
    """A file as a JoinRequest lists it (a protobuf FileInfo, say)."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def pieces_root(self) -> str: ...


def join_digest(files: Iterable[JoinedFile], local_addresses: Iterable[str]) -> str:
    """The SHA-256, in hex, of what a Join lists: "files" NUL, their count NUL, then per file
    its name, size (decimal), sha256 and pieces root, each followed by NUL; then
    "local_addresses" NUL, their count NUL, and each address followed by NUL; all UTF-8.
    (No valid name, digest or address holds a NUL, so no two lists have the same bytes.)
    """
    digest = hashlib.sha256()
    listed = list(files)
    addresses = list(local_addresses)
    digest.update(b"files\0%d\0" % len(listed))
    for file in listed:
        for field in (file.name, str(file.size), file.sha256, file.pieces_root):
            digest.update(field.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(b"local_addresses\0%d\0" % len(addresses))
    for address in addresses:
        digest.update(address.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def join_message(
    tracker: str, host: str, port: int, signed_at: int, *, nonce: bytes, digest: str
) -> bytes:
    """What a Join's signature covers: the tracker it is for (its fingerprint, "" when it
    serves plain text), the address claimed (`host` as sent, maybe empty, and `port`), the
    Unix time of signing, the Join's nonce (in hex: a tracker takes each once) and the
    join_digest of its files and local addresses. A context string keeps it from meaning
    anything else.
    """
    fields = [tracker, host, str(port), str(signed_at), nonce.hex(), digest]
    return _JOIN_CONTEXT + b"\0".join(field.encode("utf-8", "surrogatepass") for field in fields)


def check_peer_certificate(certificate_der: bytes, now: float) -> bytes:
    """`certificate_der` in PEM if it is what a napshare identity may be; else ProofError.

    The rules: at most MAX_CERTIFICATE_BYTES; a self-signed X.509 certificate of an ECDSA
    P-256 key; not a CA (a pinned CA could vouch for other keys); valid at `now` (Unix time,
    give or take JOIN_CLOCK_SKEW); no critical extension other than those napshare writes.
    The tracker applies them to every Join's certificate, and a downloader to every
    certificate a tracker lists, before it trusts one.
    """
    if len(certificate_der) > MAX_CERTIFICATE_BYTES:
        raise ProofError(f"the certificate is over {MAX_CERTIFICATE_BYTES} bytes")
    cert = _load_der(certificate_der)
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ProofError("the certificate's key is not an ECDSA key")
    if not isinstance(public.curve, ec.SECP256R1):
        raise ProofError(f"the certificate's key is on curve {public.curve.name}, not P-256")
    for extension in cert.extensions:
        if extension.critical and extension.oid not in _KNOWN_CRITICAL:
            raise ProofError(
                f"the certificate has a critical extension napshare does not know "
                f"({extension.oid.dotted_string})"
            )
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise ProofError("the certificate is a CA's (basicConstraints CA:TRUE)")
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    skew = datetime.timedelta(seconds=JOIN_CLOCK_SKEW)
    if cert.not_valid_before_utc > moment + skew:
        start = cert.not_valid_before_utc
        raise ProofError(f"the certificate is not valid before {start:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_after_utc < moment - skew:
        end = cert.not_valid_after_utc
        raise ProofError(f"the certificate expired on {end:%Y-%m-%d %H:%M} UTC")
    if cert.issuer != cert.subject:
        raise ProofError("the certificate is not self-signed (its issuer is not its subject)")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise ProofError("the certificate's signature is not its own key's") from None
    return cert.public_bytes(serialization.Encoding.PEM)


def verify_join(certificate_der: bytes, signature: bytes, message: bytes) -> str:
    """The fingerprint of `certificate_der` if `signature` is its key's over `message`.

    Raises ProofError when the certificate is not one, holds no ECDSA key, or the signature
    does not verify.
    """
    if len(certificate_der) > MAX_CERTIFICATE_BYTES:
        raise ProofError(f"the certificate is over {MAX_CERTIFICATE_BYTES} bytes")
    public = _load_der(certificate_der).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ProofError("the certificate's key is not an ECDSA key")
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ProofError("the signature is not the certificate key's over this Join") from None
    return fingerprint(certificate_der)


def _load_der(certificate_der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(certificate_der)
    except ValueError:
        raise ProofError("the certificate is not a DER X.509 certificate") from None
