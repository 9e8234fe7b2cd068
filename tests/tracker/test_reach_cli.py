"""napshare-tracker's Listen and Connect flags, on a tracker process: they reach the server,
and a stopping tracker ends its Listen streams at once.
"""

import subprocess

import grpc
from napshare.common import reasons
from napshare.common.identity import PEER_NAME, make_identity
from napshare.v1 import tracker_pb2, tracker_pb2_grpc

from tests.support.reach import ListenStream, signed_join

PEER = make_identity(PEER_NAME)
OTHER = make_identity(PEER_NAME)


def test_the_listen_flags_reach_the_tracker_and_stopping_ends_the_streams(
    spawn_tracker, info, rpc_details
):
    tracker = spawn_tracker("--max-listeners", "1", "--listen-keepalive", "2")
    with grpc.insecure_channel(tracker.address) as channel:
        stub = tracker_pb2_grpc.TrackerServiceStub(channel)
        first = stub.Join(signed_join(PEER, 8001, info("a.mp4")))
        second = stub.Join(signed_join(OTHER, 8002, info("b.mp4")))
        stream = ListenStream(stub, first.peer_id, first.token)
        assert stream.next().started.keepalive_seconds == 2
        refused = ListenStream(stub, second.peer_id, second.token)
        error = refused.next()
        assert isinstance(error, grpc.RpcError)
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        info_, retry = rpc_details(error)
        assert info_.reason == reasons.LISTENERS_FULL
        assert retry is not None
        assert tracker.stop() == 0
        while isinstance(item := stream.next(), tracker_pb2.ListenResponse):
            pass
        # Ended by the tracker with OK, not cancelled when the server's grace ran out.
        assert item is None


def test_help_lists_the_reach_flags_with_their_defaults(python, tmp_path):
    done = subprocess.run(
        [python, "-m", "napshare.tracker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    text = " ".join(done.stdout.split())
    assert "--max-listeners N Listen streams held at once" in text
    assert "(default 1,024)" in text
    for flag in ("--listen-keepalive", "--connect-rate", "--max-peer-dials"):
        assert flag in text
