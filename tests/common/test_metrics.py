"""Prometheus metrics of the tracker and of a serving peer, scraped over HTTP while files move."""

import hashlib
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from napshare.common.exitcodes import ExitCode
from napshare.common.metrics import Metrics, MetricsEndpoint
from napshare.peer.folder.store import SharedFolder
from napshare.peer.node import Node, NodeConfig
from napshare.peer.serving.server import create_server as create_peer
from napshare.peer.serving.server import peer_metrics
from napshare.tracker.index import TrackerIndex
from napshare.tracker.server import create_server as create_tracker
from napshare.tracker.server import tracker_metrics
from napshare.v1 import file_info_pb2, peer_pb2, peer_pb2_grpc, tracker_pb2, tracker_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_until

MIB = 1 << 20
SIZE = 8 * MIB + 123
CHUNK = 64 * 1024
DOWNLOAD = "/napshare.v1.PeerService/Download"
JOIN = "/napshare.v1.TrackerService/Join"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample the endpoint serves now, by name and labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is not there (a labelled counter not yet counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Served:
    """A started gRPC server with metrics on, a channel to it, and its metrics URL."""

    server: grpc.Server
    port: int
    channel: grpc.Channel
    endpoint: MetricsEndpoint

    def scrape(self) -> Samples:
        """The server's metrics now."""
        return scrape(self.endpoint.url)


@pytest.fixture
def serve() -> Iterator[Callable[[grpc.Server, int, Metrics], Served]]:
    """Serve a started server's metrics on a free port; everything is stopped after the test."""
    started: list[Served] = []

    def start(server: grpc.Server, port: int, metrics: Metrics) -> Served:
        endpoint = metrics.serve("127.0.0.1", 0)
        served = Served(server, port, grpc.insecure_channel(f"127.0.0.1:{port}"), endpoint)
        started.append(served)
        return served

    yield start
    for served in started:
        served.channel.close()
        served.server.stop(None)
        served.endpoint.close()


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, file_info_pb2.FileInfo]:
    """A folder with one file of some MiB, and its FileInfo."""
    folder = tmp_path / "shared"
    folder.mkdir()
    data = os.urandom(SIZE)
    (folder / "video.bin").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    return folder, file_info_pb2.FileInfo(name="video.bin", size=SIZE, sha256=sha)


def test_counters_move_while_a_download_runs(serve, shared):
    folder, info = shared
    metrics = tracker_metrics()
    tracker = serve(*create_tracker(host="127.0.0.1", metrics=metrics), metrics)
    metrics = peer_metrics()
    peer = serve(
        *create_peer(SharedFolder(folder), host="127.0.0.1", chunk_size=CHUNK, metrics=metrics),
        metrics,
    )
    assert value(tracker.scrape(), "napshare_tracker_peers") == 0

    tracker_pb2_grpc.TrackerServiceStub(tracker.channel).Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=peer.port, files=[info])
    )
    index = tracker.scrape()
    assert value(index, "napshare_tracker_peers") == 1
    assert value(index, "napshare_tracker_files") == 1
    assert value(index, "napshare_tracker_names") == 1
    assert value(index, "napshare_tracker_rpcs_total", method=JOIN, code="OK") == 1
    assert value(index, "napshare_tracker_rpc_duration_seconds_count", method=JOIN) == 1

    before = peer.scrape()
    assert value(before, "napshare_peer_upload_slots_in_use") == 0
    assert value(before, "napshare_peer_served_bytes_total") == 0
    assert value(before, "napshare_peer_upload_slots") == 4

    # The client reads one message and holds the stream open: the upload is under way.
    stream = peer_pb2_grpc.PeerServiceStub(peer.channel).Download(
        peer_pb2.DownloadRequest(name="video.bin")
    )
    first = next(stream)
    assert len(first.data) == CHUNK
    # A chunk is counted when gRPC asks for the next one, which may be after the client got
    # it: the second message is made only after the first was counted.
    second = next(stream)
    during = peer.scrape()
    assert value(during, "napshare_peer_upload_slots_in_use") == 1
    assert value(during, "napshare_peer_uploads_active") == 1
    assert 0 < value(during, "napshare_peer_served_bytes_total") < SIZE
    assert value(during, "napshare_peer_rpcs_total", method=DOWNLOAD, code="OK") == 0

    received = len(first.data) + len(second.data)
    received += sum(len(message.data) for message in stream)
    assert received == SIZE
    after = peer.scrape()
    assert value(after, "napshare_peer_served_bytes_total") == SIZE
    assert value(after, "napshare_peer_upload_slots_in_use") == 0
    # Kept a moment for the same connection's next call on the file (--upload-slot-hold).
    assert value(after, "napshare_peer_upload_slots_kept") == 1
    assert value(after, "napshare_peer_uploads_active") == 0
    assert value(after, "napshare_peer_rpcs_total", method=DOWNLOAD, code="OK") == 1
    assert value(after, "napshare_peer_rpc_duration_seconds_count", method=DOWNLOAD) == 1


def test_a_download_the_client_cancels_counts_as_cancelled(serve, shared):
    folder, _info = shared
    metrics = peer_metrics()
    peer = serve(
        *create_peer(SharedFolder(folder), host="127.0.0.1", chunk_size=CHUNK, metrics=metrics),
        metrics,
    )
    stream = peer_pb2_grpc.PeerServiceStub(peer.channel).Download(
        peer_pb2.DownloadRequest(name="video.bin")
    )
    next(stream)
    assert value(peer.scrape(), "napshare_peer_upload_slots_in_use") == 1
    stream.cancel()

    def counted() -> bool:
        samples = peer.scrape()
        return value(samples, "napshare_peer_rpcs_total", method=DOWNLOAD, code="CANCELLED") == 1

    wait_until(counted)
    wait_until(lambda: value(peer.scrape(), "napshare_peer_upload_slots_in_use") == 0)
    samples = peer.scrape()
    assert value(samples, "napshare_peer_rpc_duration_seconds_count", method=DOWNLOAD) == 1
    assert value(samples, "napshare_peer_served_bytes_total") < SIZE


def test_failing_rpcs_show_their_codes(serve, shared):
    folder, _info = shared
    metrics = tracker_metrics()
    tracker = serve(*create_tracker(host="127.0.0.1", metrics=metrics), metrics)
    metrics = peer_metrics()
    peer = serve(*create_peer(SharedFolder(folder), host="127.0.0.1", metrics=metrics), metrics)

    with pytest.raises(grpc.RpcError) as missing:
        list(
            peer_pb2_grpc.PeerServiceStub(peer.channel).Download(
                peer_pb2.DownloadRequest(name="missing.bin")
            )
        )
    code = missing.value.code().name
    assert code != "OK"
    failed = peer.scrape()
    assert value(failed, "napshare_peer_rpcs_total", method=DOWNLOAD, code=code) == 1
    assert value(failed, "napshare_peer_served_bytes_total") == 0

    heartbeat = "/napshare.v1.TrackerService/Heartbeat"
    with pytest.raises(grpc.RpcError) as stranger:
        tracker_pb2_grpc.TrackerServiceStub(tracker.channel).Heartbeat(
            tracker_pb2.HeartbeatRequest(peer_id="127.0.0.1:1", token="0" * 32)
        )
    code = stranger.value.code().name
    assert code != "OK"
    # A method the server does not have counts under one label, whatever its name.
    nope = tracker.channel.unary_unary("/napshare.v1.TrackerService/Nope")
    with pytest.raises(grpc.RpcError) as unknown:
        nope(b"")
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    samples = tracker.scrape()
    assert value(samples, "napshare_tracker_rpcs_total", method=heartbeat, code=code) == 1
    unimplemented = {"method": "unknown", "code": "UNIMPLEMENTED"}
    assert value(samples, "napshare_tracker_rpcs_total", **unimplemented) == 1
    assert not any("Nope" in dict(labels).get("method", "") for _name, labels in samples)


def test_expired_leases_are_counted(serve):
    metrics = tracker_metrics()
    index = TrackerIndex(heartbeat_interval=0.05)
    tracker = serve(*create_tracker(index, host="127.0.0.1", metrics=metrics), metrics)
    stub = tracker_pb2_grpc.TrackerServiceStub(tracker.channel)
    stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8776))
    stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=8777))

    wait_until(lambda: value(tracker.scrape(), "napshare_tracker_leases_expired_total") == 2)
    assert value(tracker.scrape(), "napshare_tracker_peers") == 0


def test_a_node_counts_what_its_background_downloads_receive(serve, shared, tmp_path):
    folder, info = shared
    metrics = tracker_metrics()
    tracker = serve(*create_tracker(host="127.0.0.1", metrics=metrics), metrics)
    source_metrics = peer_metrics()
    source = serve(
        *create_peer(SharedFolder(folder), host="127.0.0.1", metrics=source_metrics),
        source_metrics,
    )
    tracker_pb2_grpc.TrackerServiceStub(tracker.channel).Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=source.port, files=[info])
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    config = NodeConfig(
        folder=SharedFolder(mine),
        folder_label=str(mine),
        tracker=f"127.0.0.1:{tracker.port}",
        host="127.0.0.1",
    )
    node_metrics = peer_metrics()
    node = Node(config, lambda _peer, _files: None, node_metrics)
    endpoint = node_metrics.serve("127.0.0.1", 0)
    try:
        node.start()
        assert value(scrape(endpoint.url), "napshare_peer_received_bytes_total") == 0
        job = node.download_in_background("video.bin", None, lambda _job: None, lambda _line: None)
        job.thread.join(timeout=120)
        assert job.error is None
        samples = scrape(endpoint.url)
    finally:
        node.stop()
        endpoint.close()
    assert value(samples, "napshare_peer_received_bytes_total") == SIZE
    assert value(samples, "napshare_peer_downloads_active") == 0
    assert value(source.scrape(), "napshare_peer_served_bytes_total") == SIZE


def _env() -> dict[str, str]:
    """The environment with English console lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    return env | {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


def _start(command: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a napshare command; return it and its first two stdout lines."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        cwd=cwd,
    )
    assert process.stdout is not None
    return process, [process.stdout.readline().strip(), process.stdout.readline().strip()]


def _stop(process: subprocess.Popen[str]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_commands_serve_metrics_with_metrics_port(tmp_path, shared):
    folder, _info = shared
    python = sys.executable
    tracker, lines = _start(
        [
            python,
            "-m",
            "napshare.tracker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--plaintext",
        ],
        tmp_path,
    )
    try:
        listening, announced = lines
        assert listening.startswith("napshare tracker listening on 127.0.0.1:")
        assert announced.startswith("metrics on http://127.0.0.1:")
        tracker_url = announced.removeprefix("metrics on ")
        tracker_address = listening.rsplit(" ", 1)[1]
        peer, peer_lines = _start(
            [
                python,
                "-m",
                "napshare.peer",
                "serve",
                "--plaintext",
                "--dir",
                str(folder),
                "--no-menu",
                "--host",
                "127.0.0.1",
                "--tracker",
                tracker_address,
                "--metrics-port",
                "0",
            ],
            tmp_path,
        )
        try:
            assert peer_lines[0].startswith("listening on 127.0.0.1:")
            assert peer_lines[1].startswith("metrics on http://127.0.0.1:")
            peer_url = peer_lines[1].removeprefix("metrics on ")
            wait_until(lambda: value(scrape(tracker_url), "napshare_tracker_peers") == 1)
            assert value(scrape(peer_url), "napshare_peer_upload_slots") == 4
            assert value(scrape(peer_url), "napshare_peer_served_bytes_total") == 0
        finally:
            assert _stop(peer) == 0
        assert value(scrape(tracker_url), "napshare_tracker_peers") == 0
    finally:
        assert _stop(tracker) == 0


@pytest.mark.parametrize("command", ["tracker", "serve"])
def test_a_taken_metrics_port_is_one_line_and_its_exit_code(tmp_path, shared, command):
    folder, _info = shared
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        if command == "tracker":
            args = ["-m", "napshare.tracker", "--host", "127.0.0.1", "--port", "0", "--plaintext"]
        else:
            args = ["-m", "napshare.peer", "serve", "--plaintext", "--dir", str(folder)]
            args += ["--no-menu"]
            args += ["--tracker", "127.0.0.1:1"]
        done = subprocess.run(
            [sys.executable, *args, "--metrics-port", port],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    assert done.returncode == ExitCode.PORT_IN_USE
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
