"""A real tracker refuses a Join whose certificate breaks the identity rules, and keeps nothing."""

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from napshare.common import reasons
from napshare.common.identity import TRACKER_NAME, make_identity
from napshare.common.tls import pinned_channel
from napshare.peer.tracker_client import sign_join
from napshare.tracker.server import create_server
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.certificates import DAY, certificate, identity_of


@pytest.fixture
def tls_tracker():
    identity = make_identity(TRACKER_NAME)
    server, port = create_server(host="127.0.0.1", port=0, tls=identity)
    channel = pinned_channel(f"127.0.0.1:{port}", identity.certificate_pem)
    yield identity, tracker_pb2_grpc.TrackerServiceStub(channel)
    channel.close()
    server.stop(None)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"ca": True}, "CA:TRUE"),
        ({"before": -3 * DAY, "after": -DAY}, "expired"),
        ({"before": DAY, "after": 3 * DAY}, "not valid before"),
        ({"critical_unknown": True}, "critical extension"),
    ],
    ids=["a CA", "expired", "not yet valid", "an unknown critical extension"],
)
def test_a_signed_join_with_a_certificate_the_rules_do_not_allow_is_refused(
    tls_tracker, rpc_details, changes, why
):
    tracker, stub = tls_tracker
    key = ec.generate_private_key(ec.SECP256R1())
    peer = identity_of(key, certificate(key=key, **changes))
    request = sign_join(
        tracker_pb2.JoinRequest(
            host="127.0.0.1",
            port=8776,
            files=[file_info_pb2.FileInfo(name="a.mp4", size=1, sha256="ab" * 32)],
        ),
        peer,
        tracker.fingerprint,
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub.Join(request)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(caught.value)[0].reason == reasons.CERTIFICATE_INVALID
    assert why in caught.value.details()
    answer = stub.Search(tracker_pb2.SearchRequest(query="a"))
    assert list(answer.results) == []
