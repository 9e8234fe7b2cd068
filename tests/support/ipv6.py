"""Many IPv6 addresses of one network, for tests of per-address limits: a network namespace
whose loopback holds them, entered by the test's own thread.

Loopback on the machine itself has one IPv6 address (::1). A namespace of the test's own gets
as many of 2001:db8::/32 (the documentation prefix) as it asks for, on its loopback; the thread
that enters it (setns) makes its sockets there, and the threads it starts inherit it, so an
in-process server started inside and sockets bound to those addresses meet only there. gRPC's
own threads do not enter it: use plain sockets for the clients.

Needs root and `ip` (iproute2); `missing()` says in one line what is not there.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import subprocess
from collections.abc import Iterator, Sequence

from tests.support.netns import NAMESPACE_PREFIX, tool

CLONE_NEWNET = 0x40000000
_COUNTER = itertools.count(1)


def missing() -> str | None:
    """Why this machine cannot make the namespace, in one line; None when it can."""
    if os.geteuid() != 0:
        return "a network namespace needs root (CI runs the suite as root)"
    if tool("ip") is None:
        return "ip is not installed (apt-get install iproute2; make test does)"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def addresses_here(addresses: Sequence[str]) -> Iterator[None]:
    """Run the block in a new network namespace whose loopback is up and holds `addresses`
    (IPv6, each a /64, and 127.0.0.1 and ::1 as always); the namespace goes afterwards.
    """
    ip = tool("ip")
    assert ip is not None, missing()
    name = f"{NAMESPACE_PREFIX}{os.getpid()}-v6{next(_COUNTER)}-lo"
    subprocess.run([ip, "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        for address in addresses:
            subprocess.run(
                [ip, "-n", name, "addr", "add", f"{address}/64", "dev", "lo", "nodad"],
                check=True,
                capture_output=True,
            )
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
            os.close(target)
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False, capture_output=True)
