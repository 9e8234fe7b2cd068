"""The suite's small internet (tests/support/netns.py), checked with plain TCP before napshare
relies on it: a LAN host reaches the internet from its router's address; nothing on the internet
opens a connection to a LAN host; a short conntrack timeout forgets an idle connection; a
symmetric router does not keep source ports; a capture sees what crosses in clear; nothing is
left behind.
"""

import re
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support import netns


def test_a_lan_host_reaches_the_internet_from_its_routers_address(
    internet: netns.Internet,
) -> None:
    server = internet.public_host("server")
    home = internet.home_router("home")
    alice = home.lan_host("alice")
    listener = server.listen(8000, send="hello")

    assert alice.connect(server.address, 8000, read=5).splitlines() == ["connected", "got hello"]
    listener.wait_for(rf"^from {re.escape(home.wan_address)}:\d+$")


def test_nothing_on_the_internet_opens_a_connection_to_a_lan_host(
    internet: netns.Internet,
) -> None:
    outsider = internet.public_host("outsider")
    home = internet.home_router("home")
    alice = home.lan_host("alice")
    bob = home.lan_host("bob")
    alice.listen(8776)

    # At the router's public address nothing is forwarded: the router itself refuses.
    assert outsider.connect(home.wan_address, 8776) == "refused"
    # Even a host that routes the LAN through the router is dropped by its forward chain.
    outsider.sh("ip", "route", "add", home.lan_subnet, "via", home.wan_address)
    assert outsider.connect(alice.address, 8776, timeout=2) == "timed out"
    # On the LAN the same server answers.
    assert bob.connect(alice.address, 8776) == "connected"


def test_a_short_conntrack_timeout_forgets_an_idle_connection(internet: netns.Internet) -> None:
    server = internet.public_host("server")
    forgetful = internet.home_router("forgetful", conntrack_timeout=2)
    patient = internet.home_router("patient")
    server.listen(8000, send="hello", send_after=5)

    with ThreadPoolExecutor(2) as pool:
        # Both connections stay silent for 5 s, then the server speaks.
        behind_forgetful = pool.submit(
            forgetful.lan_host("alice").connect, server.address, 8000, read=10
        )
        behind_patient = pool.submit(patient.lan_host("bob").connect, server.address, 8000, read=10)

    assert behind_patient.result().splitlines() == ["connected", "got hello"]
    # The forgetful router dropped the mapping after 2 idle seconds: the greeting hits the
    # router itself, which knows no such connection.
    assert behind_forgetful.result().splitlines() == ["connected", "got nothing"]


def test_a_symmetric_router_does_not_keep_source_ports(internet: netns.Internet) -> None:
    server = internet.public_host("server")
    cone = internet.home_router("cone")
    symmetric = internet.home_router("symmetric", symmetric=True)
    listener = server.listen(8000)
    local_ports = {40001, 40002, 40003}

    for router in (cone, symmetric):
        host = router.lan_host(f"behind-{router.name}")
        for port in sorted(local_ports):
            assert host.connect(server.address, 8000, local_port=port) == "connected"

    def ports_seen(router: netns.Router) -> set[int]:
        pattern = rf"^from {re.escape(router.wan_address)}:(\d+)$"
        return {int(m.group(1)) for m in listener.wait_for_all(pattern, len(local_ports))}

    assert ports_seen(cone) == local_ports  # a plain masquerade keeps a free port
    # A random port per connection: whoever learns one mapping cannot guess the next.
    assert ports_seen(symmetric) != local_ports


def test_a_capture_sees_what_crosses_in_clear(internet: netns.Internet) -> None:
    server = internet.public_host("server")
    alice = internet.home_router("home").lan_host("alice")
    server.listen(8000)
    canary = f"canary-{secrets.token_hex(8)}"

    with server.capture() as capture:
        assert alice.connect(server.address, 8000, send=canary * 3) == "connected"

    assert capture.contains(canary.encode())
    assert capture.payload_bytes() >= 3 * len(canary)


def _namespaces_of(internet: netns.Internet) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line.startswith(internet.tag + "-")]


def test_closing_the_internet_stops_its_programs_and_deletes_its_namespaces(
    namespaces: None, tmp_path: Path
) -> None:
    internet = netns.Internet(tmp_path)
    try:
        host = internet.home_router("home").lan_host("alice")
        program = host.listen(8000)
        assert len(_namespaces_of(internet)) == 3
    finally:
        internet.close()

    assert not program.running()
    assert _namespaces_of(internet) == []


def test_the_namespaces_of_a_run_that_died_are_swept(namespaces: None, tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"{netns.NAMESPACE_PREFIX}{dead.pid}-1-internet"
    netns.sh("ip", "netns", "add", leftover)

    netns.Internet(tmp_path).close()  # the next run sweeps on start

    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert leftover not in listed.stdout
