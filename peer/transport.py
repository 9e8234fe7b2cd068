"""How a peer talks: plain text, or TLS with the tracker pinned (a file, a fingerprint, or the
certificate first seen, kept in `.napshare/known_trackers.json`), and this peer's identity.
"""

import contextlib
import errno
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from napshare.common.address import canonical_ip, format_address, parse_address
from napshare.common.console import tr
from napshare.common.files import replace_at
from napshare.common.identity import (
    PEER_NAME,
    Identity,
    IdentityError,
    certificate_pem,
    certificates_in,
    fingerprint,
    load_or_create,
)
from napshare.common.tls import NoTlsError, fetch_certificate
from napshare.peer.errors import (
    IdentityFilesError,
    TrackerIdentityError,
    TrackerUnreachableError,
    no_tls_tracker,
)
from napshare.peer.folder.layout import IDENTITY_DIR, KNOWN_TRACKERS_FILE, STATE_DIR

logger = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
MAX_KNOWN_BYTES = 1024 * 1024  # a known_trackers.json larger than this is not napshare's


@dataclass(frozen=True)
class Transport:
    """What --plaintext, --tracker-cert and --tracker-fingerprint said, and where first-seen
    tracker certificates are kept (None: nowhere, so an unpinned tracker is trusted each time).

    The default, plain text, is for in-process servers and tests; the command line asks for TLS
    unless --plaintext is given.
    """

    plaintext: bool = True
    tracker_cert: bytes | None = None  # PEM, from --tracker-cert
    tracker_fingerprint: str | None = None  # from --tracker-fingerprint
    known_trackers: Path | None = None


PLAINTEXT = Transport()


def tracker_certificate(transport: Transport, address: str, replicas: Sequence[str] = ()) -> bytes:
    """The tracker's certificate (PEM) to pin, checked against what `transport` knows.

    Without --tracker-cert, the certificate is fetched from `address` with a TLS handshake
    and compared with --tracker-fingerprint or the one first seen at any address of that
    tracker: `address`, the other `replicas` named with it, and their other spellings
    (pin_keys). Raises TrackerIdentityError when it differs or the tracker speaks no TLS,
    TrackerUnreachableError when it does not answer.
    """
    if transport.tracker_cert is not None:
        return transport.tracker_cert
    host, port = parse_address(address)
    try:
        der = fetch_certificate(host.strip("[]"), port)
    except NoTlsError:
        raise TrackerIdentityError(no_tls_tracker(address)) from None
    except OSError as error:
        raise TrackerUnreachableError(
            tr(
                "tracker {tracker} is unreachable ({details})",
                tracker=address,
                details=error.strerror or error,
            )
        ) from None
    seen = fingerprint(der)
    expected = transport.tracker_fingerprint
    if expected is not None and seen != expected:
        raise TrackerIdentityError(
            tr(
                "tracker {tracker} has certificate fingerprint {seen}, not {expected} "
                "(--tracker-fingerprint): someone may be posing as it",
                tracker=address,
                seen=seen,
                expected=expected,
            )
        )
    if expected is None and transport.known_trackers is not None:
        _check_known(transport.known_trackers, address, [address, *replicas], seen)
    return certificate_pem(der)


def pin_keys(address: str) -> list[str]:
    """The keys under which known_trackers.json keeps the pin of the tracker at `address`
    (`host:port`): one per way of naming that host, so that every spelling of one tracker
    finds the one pin. A host on this machine (127.0.0.0/8, ::1, localhost) is `localhost`;
    an IP address is in canonical form; a name is itself and each address it resolves to.
    """
    host, port = parse_address(address)
    hosts = [host]
    if canonical_ip(host) is None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            found = []
        hosts += [str(info[4][0]) for info in found]
    keys: list[str] = []
    for each in hosts:
        key = format_address(_pinned_host(each), port)
        if key not in keys:
            keys.append(key)
    return keys


def _pinned_host(host: str) -> str:
    canonical = canonical_ip(host)
    if canonical is None:
        return "localhost" if host == "localhost" else host
    return "localhost" if ipaddress.ip_address(canonical).is_loopback else canonical


def pinned_fingerprint(certificate: bytes) -> str:
    """The identity of a pinned tracker certificate (PEM): its first certificate's."""
    return fingerprint(certificates_in(certificate)[0])


def read_tracker_cert(path: str) -> bytes:
    """The PEM of --tracker-cert FILE; IdentityFilesError if it holds no certificate."""
    try:
        data = Path(path).read_bytes()
        certificates_in(data)
    except OSError as error:
        raise IdentityFilesError(
            tr("cannot read {path}: {error}", path=path, error=error.strerror)
        ) from None
    except IdentityError as error:
        raise IdentityFilesError(f"{path}: {error}") from None
    return data


def peer_identity(root: Path) -> Identity:
    """This peer's identity, kept in `root/.napshare/identity/` (made there on first start)."""
    directory = root / STATE_DIR / IDENTITY_DIR
    state_fd = None
    try:
        state_fd = _open_state_dir(root)
        return load_or_create(IDENTITY_DIR, PEER_NAME, parent_fd=state_fd)
    except (IdentityError, OSError) as error:
        raise IdentityFilesError(
            tr(
                "this peer's identity in {directory} is unusable: {error}; delete that folder "
                "to make a new identity (the tracker lets it have this peer's address only "
                "once the old one's lease ran out)",
                directory=directory,
                error=error,
            )
        ) from None
    finally:
        if state_fd is not None:
            os.close(state_fd)


def _open_state_dir(root: Path) -> int:
    """An fd of `root/.napshare` (made 0700 if missing); never through a symlink in its place,
    which could make this peer write its key elsewhere or adopt an identity planted there.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(STATE_DIR, 0o700, dir_fd=root_fd)
        try:
            return os.open(
                STATE_DIR,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=root_fd,
            )
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise IdentityError(
                    tr(
                        "{state} is a symlink or not a folder: napshare keeps its identity only "
                        "in a folder of its own there",
                        state=root / STATE_DIR,
                    )
                ) from None
            raise
    finally:
        os.close(root_fd)


def known_trackers_file(root: Path) -> Path:
    """Where a peer serving or downloading into `root` keeps the trackers it first saw."""
    return root / STATE_DIR / KNOWN_TRACKERS_FILE


def _check_known(path: Path, address: str, addresses: Sequence[str], seen: str) -> None:
    """Trust on first use: remember `seen` for the tracker at `addresses` (all its replicas),
    under every key of each (pin_keys); or fail if another fingerprint was seen before under
    any of them.
    """
    known = _read_known(path)
    keys: list[str] = []
    for each in addresses:
        keys += [key for key in pin_keys(each) if key not in keys]
    before = [(key, known[key]) for key in keys if key in known]
    for key, fingerprint_before in before:
        if fingerprint_before != seen:
            raise TrackerIdentityError(
                tr(
                    "TRACKER CERTIFICATE CHANGED: {tracker} now has fingerprint {seen}, not "
                    "{before} as first seen (at {where}); someone may be posing as it. If the "
                    "tracker really has a new certificate, delete its entries in {path}",
                    tracker=address,
                    seen=seen,
                    before=fingerprint_before,
                    where=key,
                    path=path,
                )
            )
    if len(before) == len(keys):
        return
    for key in keys:
        known[key] = seen
    _write_known(path, known)
    if not before:
        logger.warning(
            "trusting tracker %s on first use: certificate fingerprint %s (kept in %s)",
            address,
            seen,
            path,
        )


def _read_known(path: Path) -> dict[str, str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise IdentityFilesError(f"cannot open {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_KNOWN_BYTES + 1)
    try:
        known = json.loads(data) if len(data) <= MAX_KNOWN_BYTES else None
    except ValueError:
        known = None
    if not isinstance(known, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in known.items()
    ):
        raise IdentityFilesError(
            tr("{path} is corrupt: delete it to trust trackers anew", path=path)
        )
    return _under_pin_keys(known)


def _under_pin_keys(known: dict[str, str]) -> dict[str, str]:
    """`known` with each key as pin_keys writes it (earlier versions kept the address as
    typed): 127.0.0.1:1099 becomes localhost:1099. Names are not resolved here.
    """
    kept: dict[str, str] = {}
    for key, seen in known.items():
        try:
            host, port = parse_address(key)
            normal = format_address(_pinned_host(host), port)
        except ValueError:
            normal = key
        if kept.get(normal, seen) != seen:
            normal = key  # two pins where one is now: keep both, each refuses the other
        kept[normal] = seen
    return kept


def _write_known(path: Path, known: dict[str, str]) -> None:
    os.makedirs(path.parent, mode=0o700, exist_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        replace_at(dir_fd, path.name, json.dumps(known, indent=1, sort_keys=True).encode())
    finally:
        os.close(dir_fd)
