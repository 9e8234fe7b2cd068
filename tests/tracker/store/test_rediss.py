"""The Redis store over TLS (`--store rediss://...`): a real redis-server with a TLS port and a
certificate from a CA made here; the store works through it, and a server whose certificate
another CA signed is refused before anything is written.
"""

import datetime
import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from napshare.tracker.store.factory import StoreConfigError
from napshare.tracker.store.redis_store import RedisStore

from tests.support.net import free_port
from tests.support.redis import RedisServer, require_server
from tests.tracker.store.contract import files, keys

DAY = datetime.timedelta(days=1)


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA's key and certificate, the certificate written to folder/name.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path]]:
    """A redis-server with a TLS port whose certificate (for 127.0.0.1) the CA "ca" signed."""
    require_server()
    folder = tmp_path_factory.mktemp("rediss")
    ca_key, ca_cert = _ca(folder, "ca")
    _ca(folder, "other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("redis"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "redis.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "redis.key").write_bytes(_pem(key))
    port = free_port()
    server = RedisServer(
        folder / "server",
        0,
        *("--tls-port", str(port)),
        *("--tls-cert-file", str(folder / "redis.pem")),
        *("--tls-key-file", str(folder / "redis.key")),
        *("--tls-ca-cert-file", str(folder / "ca.pem")),
        *("--tls-auth-clients", "no"),
    )
    yield server, port, folder
    server.stop()


def _url(port: int, ca: Path, prefix: str) -> str:
    return f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&prefix={prefix}"


def test_the_store_works_over_tls_to_a_server_its_ca_signed(
    tls_redis: tuple[RedisServer, int, Path],
) -> None:
    server, port, folder = tls_redis
    prefix = f"t{uuid.uuid4().hex[:12]}"
    store = RedisStore(_url(port, folder / "ca.pem", prefix), 30.0)
    try:
        store.join("198.51.100.7", 8776, files("aula1.mp4", "aula2.mp4"))
        assert keys(store.search(name="aula1.mp4", limit=10)) == [
            ("198.51.100.7:8776", "aula1.mp4")
        ]
        with server.client() as client:
            assert client.keys(f"*{prefix}*"), "nothing reached the server over TLS"
    finally:
        store.forget()
        store.close()


def test_a_server_whose_certificate_another_ca_signed_is_refused(
    tls_redis: tuple[RedisServer, int, Path],
) -> None:
    server, port, folder = tls_redis
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with pytest.raises(StoreConfigError, match="cannot reach the store") as refused:
        RedisStore(_url(port, folder / "other-ca.pem", prefix), 30.0)
    assert "certificate" in str(refused.value).lower()
    with server.client() as client:
        assert not client.keys(f"*{prefix}*")
