"""Reach (issue 19), across machines: a real tracker and real peers, run as users run them (TLS,
default ports), on a small internet of network namespaces (tests/support/netns.py) where home
routers masquerade their LAN and drop every connection from outside, as nearly all do.

What reach means, case by case:
- nobody on the internet can open a connection to a peer behind a home router (the control);
- yet a public peer downloads its files: the peer dials out to it (a reverse connection);
- two peers behind two home routers reach each other through the tracker's relay, which carries
  only the ciphertext of their own TLS;
- two peers behind one router find each other at their LAN addresses;
- a file larger than the relay's byte cap completes: the download resumes in a new session;
- a router that forgets idle connections quickly does not cut the peer off;
- behind symmetric NATs (a random port per connection), peers fall back to the relay;
- after a tracker restart the peer behind a router is reachable again;
- a download whose source no path reaches says so at once and exits 4.

The files are small (a few MiB; more where the size is the point), so that each case takes
seconds; each downloaded file is checked against the shared one by SHA-256.
"""

import re
import secrets
import time
from pathlib import Path

from tests.support import netns
from tests.support.files import sha256_file
from tests.support.programs import (
    MIB,
    NOT_REACHABLE,
    PEER_PORT,
    RELAY_PORT,
    THROUGH_RELAY,
    THROUGH_REVERSE,
    ServingPeer,
    Tracker,
    canary_file,
    download,
)

SIZE = 4 * MIB + 12345  # a few pieces, and not a whole number of them
EXIT_NO_PEER_REACHABLE = 4


def shared_file(folder: Path, name: str, size: int = SIZE) -> tuple[Path, bytes]:
    """A file of `size` bytes in `folder` made of one random canary string over and over, and
    that canary: a capture that saw any of its bytes in clear would see a whole canary.
    """
    canary = f"napshare-canary-{secrets.token_hex(8)}-".encode()
    return canary_file(folder / name, size, canary), canary


def assert_downloaded(result_path: Path, original: Path) -> None:
    """The download is there, byte for byte the shared file."""
    assert result_path.exists(), f"{result_path.name} was not downloaded"
    assert sha256_file(result_path) == sha256_file(original)


def test_nobody_on_the_internet_opens_a_connection_to_a_peer_behind_a_home_router(
    internet: netns.Internet, tmp_path: Path
) -> None:
    """The control: what makes reach necessary, in this suite's NAT as at home."""
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    outsider = internet.public_host("outsider")
    home = internet.home_router("home")
    alice = ServingPeer(home.lan_host("alice"), tmp_path / "alice", tracker)

    # The tracker registers the address the Join came from: the router's, at alice's port...
    assert alice.peer_id == f"{home.wan_address}:{PEER_PORT}"
    # ...and finds nobody there when it connects back.
    alice.wait_for(NOT_REACHABLE)
    # Nor can anyone else: the router forwards nothing and refuses itself,
    assert outsider.connect(home.wan_address, PEER_PORT) == "refused"
    # and drops what would cross it, even for a host that routes to alice's own address.
    outsider.sh("ip", "route", "add", home.lan_subnet, "via", home.wan_address)
    assert outsider.connect(alice.host.address, PEER_PORT, timeout=2) == "timed out"
    # On her LAN she answers.
    assert home.lan_host("bob").connect(alice.host.address, PEER_PORT) == "connected"


def test_a_download_from_a_peer_no_path_reaches_says_so_at_once_and_exits_4(
    internet: netns.Internet, tmp_path: Path
) -> None:
    """What a user saw before reach, for every peer behind a router ("gone: Connection
    refused", then 120 s of silence), stays only where no path exists: both peers behind
    routers and a tracker without a relay. Then the download says so at once.
    """
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker", "--no-relay")
    alice_home = internet.home_router("alice-home")
    bob_home = internet.home_router("bob-home")
    shared_file(tmp_path / "alice", "homefile.bin")
    ServingPeer(alice_home.lan_host("alice"), tmp_path / "alice", tracker)

    # Killed after 60 s: well before the 120 s after which a download gives up on silence.
    result = download(
        bob_home.lan_host("bob"),
        tracker,
        "homefile.bin",
        tmp_path / "bob",
        *("--give-up-after", "120"),
        timeout=60,
    )

    assert result.returncode == EXIT_NO_PEER_REACHABLE, result.output
    # One line names the paths that were tried; bob knew that his router would drop a dial
    # back to him, so nobody was asked to dial (no 5 s wait for it).
    assert re.search(r"\breverse\b.*\brelay\b", result.output), result.output
    assert "this host is behind a NAT, which would drop the dial" in result.output
    assert "no connection within" not in result.output
    assert not result.path.exists()


def test_a_public_peer_downloads_from_a_peer_behind_a_home_router_by_a_reverse_connection(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    original, _ = shared_file(tmp_path / "alice", "homefile.bin")
    home = internet.home_router("home")
    alice = ServingPeer(home.lan_host("alice"), tmp_path / "alice", tracker)
    alice.wait_for(NOT_REACHABLE)
    carol = internet.public_host("carol")

    with carol.capture() as capture:
        result = download(carol, tracker, "homefile.bin", tmp_path / "carol")

    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    assert THROUGH_REVERSE.search(result.output), result.output
    # The connection that carried the file was opened by alice, from behind her router.
    assert capture.connections(to=carol.address) >= 1
    assert all(
        packet.source == home.wan_address
        for packet in capture.packets()
        if packet.opens and packet.destination == carol.address
    )


def test_peers_behind_two_home_routers_reach_each_other_through_a_relay_that_sees_only_ciphertext(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker_host = internet.public_host("tracker")
    tracker = Tracker(tracker_host, tmp_path / "tracker")  # its relay runs beside it, by default
    original, canary = shared_file(tmp_path / "alice", "homefile.bin")
    ServingPeer(internet.home_router("alice-home").lan_host("alice"), tmp_path / "alice", tracker)
    bob = internet.home_router("bob-home").lan_host("bob")

    with tracker_host.capture() as capture:
        result = download(bob, tracker, "homefile.bin", tmp_path / "bob")

    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    assert THROUGH_RELAY.search(result.output), result.output
    # Every byte of the file crossed the relay's host, twice (in from alice, out to bob)...
    assert capture.payload_bytes() >= 2 * SIZE
    # ...and not one canary in clear: the relay carried the peers' own TLS.
    assert not capture.contains(canary)


def test_two_peers_behind_one_home_router_download_over_their_lan(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    home = internet.home_router("home")
    original, _ = shared_file(tmp_path / "alice", "homefile.bin")
    alice = ServingPeer(home.lan_host("alice"), tmp_path / "alice", tracker)
    dave = home.lan_host("dave")

    with home.capture() as wan:  # the router's side on the internet
        result = download(dave, tracker, "homefile.bin", tmp_path / "dave")

    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    assert f"local address {alice.host.address}:{PEER_PORT}" in result.output
    # The file never left the LAN: only the talk with the tracker crossed the router.
    assert wan.payload_bytes() < SIZE // 4


def test_a_file_larger_than_the_relays_byte_cap_completes_by_resuming(
    internet: netns.Internet, tmp_path: Path
) -> None:
    cap = 2 * MIB
    tracker_host = internet.public_host("tracker")
    tracker = Tracker(tracker_host, tmp_path / "tracker", "--relay-max-session-bytes", "2M")
    original, _ = shared_file(tmp_path / "alice", "bigfile.bin", size=3 * cap + 12345)
    ServingPeer(internet.home_router("alice-home").lan_host("alice"), tmp_path / "alice", tracker)
    bob_home = internet.home_router("bob-home")

    with tracker_host.capture() as capture:
        result = download(bob_home.lan_host("bob"), tracker, "bigfile.bin", tmp_path / "bob")

    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    # No session carries more than the cap: bob came back for more, at least three times.
    assert capture.connections(to=tracker_host.address, port=RELAY_PORT) >= 2 * 3


def test_a_router_that_forgets_idle_connections_in_seconds_does_not_cut_the_peer_off(
    internet: netns.Internet, tmp_path: Path
) -> None:
    forget_after = 4
    # The tracker's keepalives on the control stream every second; the router forgets a
    # connection after 4 idle seconds; the peer's heartbeats come every 30 s.
    tracker = Tracker(
        internet.public_host("tracker"), tmp_path / "tracker", "--listen-keepalive", "1"
    )
    original, _ = shared_file(tmp_path / "alice", "homefile.bin")
    home = internet.home_router("home", conntrack_timeout=forget_after)
    alice = ServingPeer(home.lan_host("alice"), tmp_path / "alice", tracker)
    alice.wait_for(NOT_REACHABLE)

    time.sleep(3 * forget_after)  # nobody asks for alice's files meanwhile

    result = download(internet.public_host("carol"), tracker, "homefile.bin", tmp_path / "carol")
    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    # The control stream was alive: alice dialled carol back, no relay was needed.
    assert THROUGH_REVERSE.search(result.output), result.output


def test_peers_behind_symmetric_nats_fall_back_to_the_relay(
    internet: netns.Internet, tmp_path: Path
) -> None:
    """Routers that give each connection a random port: nobody can guess where to dial, so
    the peers meet at the relay.
    """
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    original, _ = shared_file(tmp_path / "alice", "homefile.bin")
    alice_home = internet.home_router("alice-home", symmetric=True)
    ServingPeer(alice_home.lan_host("alice"), tmp_path / "alice", tracker)
    bob = internet.home_router("bob-home", symmetric=True).lan_host("bob")

    result = download(bob, tracker, "homefile.bin", tmp_path / "bob")

    assert result.returncode == 0, result.output
    assert_downloaded(result.path, original)
    assert THROUGH_RELAY.search(result.output), result.output


def test_after_a_tracker_restart_the_peer_behind_a_home_router_is_reachable_again(
    internet: netns.Internet, tmp_path: Path
) -> None:
    tracker = Tracker(internet.public_host("tracker"), tmp_path / "tracker")
    first, _ = shared_file(tmp_path / "alice", "before.bin")
    second, _ = shared_file(tmp_path / "alice", "after.bin")
    alice = ServingPeer(internet.home_router("home").lan_host("alice"), tmp_path / "alice", tracker)
    carol = internet.public_host("carol")
    before = download(carol, tracker, "before.bin", tmp_path / "carol")
    assert before.returncode == 0, before.output

    tracker.restart()  # same address and certificate; it knows no peer
    # alice joins again and opens her control stream again, by herself.
    tracker.process.wait_for(rf"^Peer {re.escape(alice.peer_id)} added", timeout=60)
    tracker.process.wait_for(rf"peer {re.escape(alice.peer_id)} listens for connection requests")

    after = download(carol, tracker, "after.bin", tmp_path / "carol")
    assert after.returncode == 0, after.output
    assert_downloaded(after.path, second)
    assert_downloaded(before.path, first)
    assert THROUGH_REVERSE.search(after.output), after.output
