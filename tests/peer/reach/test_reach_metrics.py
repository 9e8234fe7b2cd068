"""Metrics of reach, scraped over HTTP: the tracker's Listen streams and Connect answers by
path, a serving peer's Listen stream and dial-backs, a downloading peer's connections by path.
"""

import hashlib
import os
import urllib.request

from napshare.common.metrics import Metrics
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import peer_metrics
from napshare.tracker.server import tracker_metrics
from prometheus_client.parser import text_string_to_metric_families

from tests.support.reach import natted_config, start_reach_tracker
from tests.support.waiting import wait_until

DATA = os.urandom(2 * 1024 * 1024 + 7)


def scrape(metrics: Metrics) -> dict[tuple[str, str], float]:
    """Every sample, by name and its `path` label ("" without one)."""
    endpoint = metrics.serve("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(endpoint.url, timeout=10) as response:
            text = response.read().decode()
    finally:
        endpoint.close()
    return {
        (sample.name, sample.labels.get("path", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_each_side_counts_how_peers_are_reached(tmp_path):
    tracker_registry = tracker_metrics()
    tracker = start_reach_tracker(tls=True, metrics=tracker_registry)
    serving_registry, downloading_registry = peer_metrics(), peer_metrics()
    shared = tmp_path / "natted"
    shared.mkdir()
    (shared / "data.bin").write_bytes(DATA)
    natted = Node(
        natted_config(shared, tracker.address, tracker.transport()),
        lambda *_: None,
        serving_registry,
    )
    folder = tmp_path / "downloader"
    folder.mkdir()
    downloader = Node(
        NodeConfig(
            folder=SharedFolder(folder),
            folder_label="downloader",
            tracker=tracker.address,
            host="127.0.0.1",
            transport=tracker.transport(),
        ),
        lambda *_: None,
        downloading_registry,
    )
    nodes = [natted, downloader]
    try:
        for node in nodes:
            node.start()
        wait_until(lambda: natted.reach.listening)
        job = downloader.download_in_background("data.bin", None, lambda _job: None)
        job.thread.join(60)
        assert job.error is None
        assert job.result is not None
        assert hashlib.sha256((folder / "data.bin").read_bytes()).digest() == (
            hashlib.sha256(DATA).digest()
        )
        tracker_samples = scrape(tracker_registry)
        serving = scrape(serving_registry)
        downloading = scrape(downloading_registry)
    finally:
        for node in nodes:
            node.stop()
        tracker.server.stop(None)
    assert tracker_samples[("napshare_tracker_listeners", "")] == 1  # the NAT'd peer's
    assert tracker_samples[("napshare_tracker_connects_total", "reverse")] >= 1
    assert tracker_samples[("napshare_tracker_connects_total", "relay")] == 0
    assert serving[("napshare_peer_listening", "")] == 1
    dialled = serving[("napshare_peer_dialbacks_total", "reverse")]
    assert dialled >= 1
    assert downloading[("napshare_peer_connections_total", "reverse")] == dialled
    assert downloading[("napshare_peer_connections_total", "direct")] == 0
    assert downloading[("napshare_peer_listening", "")] == 0  # reachable: no stream
