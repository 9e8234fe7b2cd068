"""gRPC TLS for napshare: server credentials of an identity, channels pinned to one certificate.

Clients never trust a CA: each channel trusts exactly one certificate (the peer's from the
tracker's Search answer, the tracker's from a pin) and asks for a name that certificate holds.
"""

import socket
import ssl

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from napshare.common.identity import Identity

HANDSHAKE_TIMEOUT = 5.0  # seconds to fetch a server's certificate (trust on first use)
# What gRPC's handshake errors say when the server's certificate is not the pinned one, and
# when the other side does not speak TLS at all.
_NOT_PINNED = ("CERTIFICATE_VERIFY_FAILED", "Hostname Verification Check failed")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


def server_credentials(identity: Identity) -> grpc.ServerCredentials:
    """TLS with `identity`'s key and certificate, no client certificate asked."""
    return grpc.ssl_server_credentials([(identity.key_pem, identity.certificate_pem)])


def pinned_channel(
    target: str, certificate_pem: bytes, options: list[tuple[str, int | str]] | None = None
) -> grpc.Channel:
    """A channel to `target` that trusts only `certificate_pem` (it must be self-signed).

    The name asked for is one the certificate holds, so only the pin decides.
    """
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate_pem)
    name = ("grpc.ssl_target_name_override", certificate_name(certificate_pem))
    return grpc.secure_channel(target, credentials, options=[*(options or []), name])


def certificate_name(certificate_pem: bytes) -> str:
    """A DNS name the certificate holds: its first subjectAltName, else its common name."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alt.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if names:
        return names[0]
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else ""


def not_pinned(details: str) -> bool:
    """Whether a gRPC error's details say the server showed a certificate other than the pin."""
    return any(mark in details for mark in _NOT_PINNED)


def not_tls(details: str) -> bool:
    """Whether a gRPC error's details say the server answered TLS with plain text."""
    return "handshake failed" in details.lower() and any(mark in details for mark in _NOT_TLS)


class NoTlsError(OSError):
    """The server answered, but not with TLS (it serves plain text)."""


def fetch_certificate(host: str, port: int, timeout: float = HANDSHAKE_TIMEOUT) -> bytes:
    """The certificate (DER) a TLS server at host:port shows, checked against nothing.

    For trust on first use: the caller compares it with what it knows. Raises NoTlsError when
    the server speaks no TLS, OSError when it cannot be reached.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            with context.wrap_socket(sock) as tls:
                der = tls.getpeercert(binary_form=True)
        except ssl.SSLError as error:
            raise NoTlsError(f"no TLS handshake ({error.reason or error})") from None
    if not der:
        raise NoTlsError("the server showed no certificate")
    return der


def speaks_tls(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether host:port completes a TLS handshake (for telling a plain text client why)."""
    try:
        fetch_certificate(host, port, timeout)
    except OSError:
        return False
    return True
