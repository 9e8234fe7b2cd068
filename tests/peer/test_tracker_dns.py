"""A tracker name with several addresses (one DNS name for its replicas): the peer's calls go
to another address when one replica dies, and the peer stays listed. In a network namespace
of the test's own, whose hosts file gives the name two loopback addresses.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis import shared_server, store_url

NAME = "replicas.napshare.test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace with loopback up, and NAME at 127.0.0.1 and 127.0.0.2 in its hosts."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns) for a namespace of its own")
    name = f"napshare-dns-{uuid.uuid4().hex[:8]}"
    hosts = Path("/etc/netns") / name
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        hosts.mkdir(parents=True)
        (hosts / "hosts").write_text(f"127.0.0.1 localhost\n127.0.0.1 {NAME}\n127.0.0.2 {NAME}\n")
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
        )
        yield name
    finally:
        shutil.rmtree(hosts, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_a_peer_that_knows_one_name_stays_listed_when_a_replica_behind_it_dies(
    namespace: str, tmp_path: Path
) -> None:
    store = store_url(shared_server())
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.support.dns_replicas",
         NAME, store, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["peers"] == ["127.0.0.1:7001"], found
