"""Several tracker processes on one Redis answer as one index, and a restart loses nothing."""

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from napshare.common import reasons
from napshare.common.exitcodes import ExitCode
from napshare.common.identity import PEER_NAME, make_identity
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.support.chaos import store_loss
from tests.support.reach import ListenStream, signed_join
from tests.support.redis import RedisServer, store_url
from tests.support.trackers import TrackerProcess
from tests.support.trackers import file_info as info

PEER = make_identity(PEER_NAME)
REVERSE = tracker_pb2.CONNECT_PATH_REVERSE


def stub(tracker: TrackerProcess) -> tracker_pb2_grpc.TrackerServiceStub:
    channel = grpc.insecure_channel(tracker.address)
    return tracker_pb2_grpc.TrackerServiceStub(channel)


def join(tracker: TrackerProcess, port: int, *names: str) -> tracker_pb2.JoinResponse:
    request = tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=[info(n) for n in names])
    return stub(tracker).Join(request, timeout=10)


def search(tracker: TrackerProcess, **fields: object) -> tracker_pb2.SearchResponse:
    return stub(tracker).Search(tracker_pb2.SearchRequest(**fields), timeout=10)  # type: ignore[arg-type]


def keys(answer: tracker_pb2.SearchResponse) -> list[tuple[str, str]]:
    return [(r.peer_id, r.file.name) for r in answer.results]


@pytest.fixture
def replicas(
    spawn_tracker: Callable[..., TrackerProcess], redis_server: RedisServer
) -> Callable[..., list[TrackerProcess]]:
    """replicas(n, *flags): n tracker processes sharing one new store on the session's Redis."""
    url = store_url(redis_server)

    def start(count: int, *flags: str) -> list[TrackerProcess]:
        return [spawn_tracker("--store", url, *flags) for _ in range(count)]

    return start


def test_two_trackers_on_one_store_answer_as_one(
    replicas: Callable[..., list[TrackerProcess]],
) -> None:
    a, b = replicas(2)
    joined = join(a, 9001, *(f"lecture-{n}.mp4" for n in range(5)))
    join(b, 9002, "lecture-2.mp4")

    first = search(b, query="lecture", page_size=3)
    rest = search(a, query="lecture", page_size=3, page_token=first.next_page_token)

    assert keys(first) + keys(rest) == [
        *(("127.0.0.1:9001", f"lecture-{n}.mp4") for n in range(5)),
        ("127.0.0.1:9002", "lecture-2.mp4"),
    ]
    heartbeat = tracker_pb2.HeartbeatRequest(peer_id=joined.peer_id, token=joined.token)
    stub(b).Heartbeat(heartbeat, timeout=10)  # a lease taken at one replica, renewed at another
    stub(b).Leave(tracker_pb2.LeaveRequest(peer_id=joined.peer_id, token=joined.token))
    assert keys(search(a, name="lecture-2.mp4")) == [("127.0.0.1:9002", "lecture-2.mp4")]
    with pytest.raises(grpc.RpcError) as gone:
        stub(a).Heartbeat(heartbeat, timeout=10)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_kept_answer_at_one_replica_sees_a_join_at_another(
    replicas: Callable[..., list[TrackerProcess]],
) -> None:
    a, b = replicas(2)
    join(a, 9001, "song.ogg")
    assert len(search(a, name="song.ogg").results) == 1  # kept by a

    join(b, 9002, "song.ogg")

    assert keys(search(a, name="song.ogg")) == [
        ("127.0.0.1:9001", "song.ogg"),
        ("127.0.0.1:9002", "song.ogg"),
    ]


def test_limits_hold_across_replicas(
    replicas: Callable[..., list[TrackerProcess]], rpc_details: Callable[..., object]
) -> None:
    a, b = replicas(2, "--max-peers", "2")
    join(a, 9001, "a")
    join(b, 9002, "b")

    with pytest.raises(grpc.RpcError) as refused:
        join(a, 9003, "c")

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_details(refused.value)[0].reason == reasons.INDEX_PEER_LIMIT  # type: ignore[index]


def test_a_replica_killed_and_restarted_answers_at_once_with_nothing_lost(
    replicas: Callable[..., list[TrackerProcess]],
    spawn_tracker: Callable[..., TrackerProcess],
) -> None:
    a, b = replicas(2, "--heartbeat-interval", "1")  # a lease, and the gathering window: 3 s
    joined = [
        join(a if port % 2 else b, port, f"file-{port}.mp4", "common.mp4")
        for port in range(9001, 9006)
    ]
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:  # the store is no longer new; the peers stay
        for peer in joined:
            request = tracker_pb2.HeartbeatRequest(peer_id=peer.peer_id, token=peer.token)
            stub(b).Heartbeat(request, timeout=10)
        time.sleep(0.5)
    before = search(b, query="mp4")
    assert not before.gathering
    store = a.process.args[a.process.args.index("--store") + 1]  # type: ignore[union-attr]

    a.stop(signal.SIGKILL)
    again = spawn_tracker("--store", store, "--heartbeat-interval", "1")
    answer = search(again, query="mp4")

    assert keys(answer) == keys(before)
    assert len(keys(before)) == 10
    assert not answer.gathering


def test_an_expired_peer_is_reported_once_by_the_replicas(
    replicas: Callable[..., list[TrackerProcess]],
) -> None:
    trackers = replicas(2, "--heartbeat-interval", "0.2")
    join(trackers[0], 9001, "x.mp4")

    dead: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not dead:
        for tracker in trackers:
            try:
                line = tracker.next_line(timeout=0.2)
            except pytest.fail.Exception:
                continue
            if " dead." in line:
                dead.append(line)
    time.sleep(1.0)  # a second report would come within the sweeps' next ticks
    for tracker in trackers:
        while True:
            try:
                line = tracker.next_line(timeout=0.2)
            except pytest.fail.Exception:
                break
            if " dead." in line:
                dead.append(line)
    assert dead == ["Peer 127.0.0.1:9001 dead. Removing its files x.mp4"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own, to kill."""
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def test_when_the_store_loses_its_data_every_replica_gathers_once(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    assert store_loss(own_redis, tmp_path) == []


def test_a_store_that_cannot_be_reached_is_one_line_and_its_exit_code(
    python: str, tmp_path: Path
) -> None:
    command = [python, "-m", "napshare.tracker", "--plaintext", "--port", "0"]
    done = subprocess.run(
        [*command, "--store", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == ExitCode.STORE_UNAVAILABLE
    unreachable = r"napshare-tracker: cannot reach the store at redis://127\.0\.0\.1:1/0: .+\n"
    assert re.fullmatch(unreachable, done.stderr)


def test_a_connect_at_one_replica_reaches_the_listen_stream_held_by_another(
    replicas: Callable[..., list[TrackerProcess]], rpc_details: Callable[..., object]
) -> None:
    a, b = replicas(2, "--listen-keepalive", "1")
    reply = stub(a).Join(signed_join(PEER, 8776, info("a.mp4")), timeout=10)
    at_a = ListenStream(stub(a), reply.peer_id, reply.token)
    try:
        assert at_a.event().WhichOneof("event") == "started"
        asked = tracker_pb2.ConnectRequest(peer_id=reply.peer_id, path=REVERSE, reverse_port=4242)
        answer = stub(b).Connect(asked, timeout=10)
        dial = at_a.event().reverse_dial
        assert dial.address == "127.0.0.1:4242"
        assert (dial.session, dial.secret) == (answer.session, answer.secret)
    finally:
        at_a.cancel()

    # A replica that dies takes its streams along; the peer opens its stream at another.
    again = ListenStream(stub(a), reply.peer_id, reply.token)
    assert again.event().WhichOneof("event") == "started"
    a.stop(signal.SIGKILL)
    with pytest.raises(grpc.RpcError) as gone:
        stub(b).Connect(asked, timeout=10)
    assert rpc_details(gone.value)[0].reason == reasons.PEER_NOT_LISTENING  # type: ignore[index]
    at_b = ListenStream(stub(b), reply.peer_id, reply.token)
    try:
        assert at_b.event().WhichOneof("event") == "started"
        answer = stub(b).Connect(asked, timeout=10)
        assert at_b.event().reverse_dial.session == answer.session
    finally:
        at_b.cancel()


def test_a_newer_listen_or_a_leave_at_one_replica_ends_the_stream_held_by_another(
    replicas: Callable[..., list[TrackerProcess]], rpc_details: Callable[..., object]
) -> None:
    a, b = replicas(2)
    reply = stub(a).Join(signed_join(PEER, 8776, info("a.mp4")), timeout=10)
    at_a = ListenStream(stub(a), reply.peer_id, reply.token)
    assert at_a.event().WhichOneof("event") == "started"
    at_b = ListenStream(stub(b), reply.peer_id, reply.token)
    assert at_b.event().WhichOneof("event") == "started"

    ended = end_of(at_a)
    assert ended.code() is grpc.StatusCode.ABORTED
    assert rpc_details(ended)[0].reason == reasons.LISTEN_REPLACED  # type: ignore[index]
    stub(a).Leave(tracker_pb2.LeaveRequest(peer_id=reply.peer_id, token=reply.token), timeout=10)
    ended = end_of(at_b)
    assert ended.code() is grpc.StatusCode.NOT_FOUND


def end_of(stream: ListenStream) -> grpc.RpcError:
    """How `stream` ended (its keepalives skipped)."""
    item = stream.next()
    while isinstance(item, tracker_pb2.ListenResponse):
        item = stream.next()
    assert isinstance(item, grpc.RpcError), f"the stream ended with {item}"
    return item
