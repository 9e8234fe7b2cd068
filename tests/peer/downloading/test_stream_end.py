"""A stream that brought every byte it asked for is read to its end: the serving peer sees its
Download finish OK and counts every byte it served; it used to cancel the call at its last
byte, and now and then the peer counted a CANCELLED call with its last chunk not served.
"""

import random
import urllib.request
from pathlib import Path

from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.tracker.server import create_server as create_tracker
from prometheus_client.parser import text_string_to_metric_families

from tests.support.peers import run_peer, spawn_peer_process
from tests.support.programs import REACHABLE
from tests.support.waiting import wait_until

SIZE = 5_000_000  # five pieces, the last one 0.77 MiB: a last chunk that takes a while to write
DOWNLOADS = 4
DOWNLOAD = "/napshare.v1.PeerService/Download"


def download_calls(url: str) -> dict[str, float]:
    """The peer's finished Download calls by status code, and its bytes served."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "napshare_peer_rpcs_total" and sample.labels["method"] == DOWNLOAD:
                found[sample.labels["code"]] = sample.value
            elif sample.name == "napshare_peer_served_bytes_total":
                found["served bytes"] = sample.value
    return found


def test_every_finished_download_ends_ok_at_the_peer_with_every_byte_counted(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "aula1.mp4").write_bytes(random.Random(5).randbytes(SIZE))
    identity = make_identity(TRACKER_NAME, ["127.0.0.1"])
    cert = tmp_path / "tracker.pem"
    cert.write_bytes(identity.certificate_pem)
    tracker, tracker_port = create_tracker(host="127.0.0.1", port=0, tls=identity)
    address = f"127.0.0.1:{tracker_port}"
    pin = ("--tracker-cert", str(cert))
    peer = spawn_peer_process(shared, address, *pin, "--metrics-port", "0", tls=True)
    try:
        url = peer.wait_for(r"metrics on (http://\S+)").group(1)
        peer.wait_for(REACHABLE)
        for n in range(DOWNLOADS):
            target = tmp_path / f"downloads-{n}"
            target.mkdir()
            done = run_peer(
                "download", "aula1.mp4", "--dir", str(target), "--tracker", address, *pin, tls=True
            )
            assert done.returncode == 0, done.stderr
        wait_until(
            lambda: (
                sum(v for k, v in download_calls(url).items() if k != "served bytes") >= DOWNLOADS
            ),
            timeout=10,
        )
        calls = download_calls(url)
    finally:
        peer.kill()
        tracker.stop(None)

    assert calls == {"OK": DOWNLOADS, "served bytes": DOWNLOADS * SIZE}
