"""Leases running out on 100,000 entries: health and searches keep answering, one line a peer."""

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.trackers import digest

PEERS = 2
FILES = 50_000  # the most one peer may share
PAUSE = 0.02  # between rounds of probes, so that they leave the tracker time to work
LIVENESS_SECONDS = 2.0  # a liveness bound: every probe must answer within it, not a timing target
FLAGS = (
    "--max-files-per-address",
    str(PEERS * FILES),
    "--max-name-bytes-per-address",
    "1000000000",
    "--large-join-interval",  # both peers' Joins come from one address, one after the other
    "0",
)


def name(peer: int, number: int) -> str:
    """53 characters, sharing most trigrams with every other name: the costly case."""
    return f"p{peer}-{number:05d}-holiday-movie-season-finale-extended-cut.mp4"


def join_request(peer: int) -> tracker_pb2.JoinRequest:
    files = [
        file_info_pb2.FileInfo(name=name(peer, n), size=n, sha256=digest(name(peer, n)))
        for n in range(FILES)
    ]
    return tracker_pb2.JoinRequest(host="127.0.0.1", port=7000 + peer, files=files)


def probe(
    channel: grpc.Channel, stop: threading.Event, failures: list[str], calls: list[int]
) -> None:
    """Health checks and searches, each of which must answer OK within LIVENESS_SECONDS."""
    health = health_pb2_grpc.HealthStub(channel)
    tracker = tracker_pb2_grpc.TrackerServiceStub(channel)
    searches = (
        tracker_pb2.SearchRequest(name=name(0, 7)),
        tracker_pb2.SearchRequest(query="p1-00042"),
    )
    while not stop.is_set():
        for call in (
            lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=LIVENESS_SECONDS),
            *(
                lambda request=request: tracker.Search(request, timeout=LIVENESS_SECONDS)
                for request in searches
            ),
        ):
            try:
                call()
            except grpc.RpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")
            calls.append(1)
        stop.wait(PAUSE)


@pytest.mark.serial  # every probe must answer within 2 s while the tracker purges
def test_expiry_of_a_hundred_thousand_entries_does_not_stall_the_tracker(spawn_tracker):
    tracker = spawn_tracker("--heartbeat-interval", "4", *FLAGS)
    failures: list[str] = []
    calls: list[int] = []
    stop = threading.Event()
    with grpc.insecure_channel(
        tracker.address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    ) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        joined = []
        for request in [join_request(peer) for peer in range(PEERS)]:
            joined.append(stub.Join(request, timeout=120))
            for earlier in joined:  # every lease runs out together, a lease after the last
                stub.Heartbeat(
                    tracker_pb2.HeartbeatRequest(peer_id=earlier.peer_id, token=earlier.token)
                )
        prober = threading.Thread(target=probe, args=(channel, stop, failures, calls))
        prober.start()
        lines: list[str] = []  # of the joined and the dead peers; searches say lines too
        try:
            while sum(" dead. " in line for line in lines) < PEERS:
                line = tracker.next_line(timeout=120)
                if " requested file " not in line:
                    lines.append(line)
        finally:
            stop.set()
            prober.join()
    assert len(lines) == 2 * PEERS, lines
    assert all(f"with {FILES} files:" in line or f"its {FILES} files:" in line for line in lines)
    assert sum(len(line) for line in lines) < PEERS * 2 * 500  # one short line a peer
    assert not failures, f"{len(failures)} of {len(calls)} probes failed, first: {failures[0]}"
    assert calls
