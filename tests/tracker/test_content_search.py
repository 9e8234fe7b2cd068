"""Search by content over gRPC, on tracker processes with each store backend: every peer that
shares the same bytes, under any name, and bad digests refused with their reasons.
"""

import hashlib
from collections.abc import Callable

import grpc
import pytest
from napshare.common import error_details, reasons
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.redis import shared_server, store_url
from tests.support.trackers import TrackerProcess


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def same_bytes(name: str, content: str) -> file_info_pb2.FileInfo:
    return file_info_pb2.FileInfo(
        name=name, size=len(content), sha256=digest(content), pieces_root=digest("root" + content)
    )


@pytest.fixture(params=["memory", "redis"])
def tracker(
    request: pytest.FixtureRequest, spawn_tracker: Callable[..., TrackerProcess]
) -> TrackerProcess:
    if request.param == "memory":
        return spawn_tracker()
    return spawn_tracker("--store", store_url(shared_server()))


def test_a_search_by_content_lists_the_same_bytes_under_every_name(
    tracker: TrackerProcess,
) -> None:
    stub = tracker_pb2_grpc.TrackerServiceStub(grpc.insecure_channel(tracker.address))
    shared = {
        9001: [same_bytes("aula1.mp4", "lecture"), same_bytes("notes.txt", "notes")],
        9002: [same_bytes("Aula 1 - Redes.mp4", "lecture")],
        9003: [same_bytes("semana1.mp4", "lecture")],
        9004: [same_bytes("aula1.mp4", "another lecture")],
    }
    for port, files in shared.items():
        stub.Join(tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=files), timeout=10)

    answer = stub.Search(tracker_pb2.SearchRequest(sha256=digest("lecture")), timeout=10)
    by_root = stub.Search(
        tracker_pb2.SearchRequest(pieces_root=digest("rootlecture").upper()), timeout=10
    )
    first = stub.Search(
        tracker_pb2.SearchRequest(sha256=digest("lecture"), page_size=2), timeout=10
    )
    rest = stub.Search(
        tracker_pb2.SearchRequest(
            sha256=digest("lecture"), page_size=2, page_token=first.next_page_token
        ),
        timeout=10,
    )

    expected = [
        ("127.0.0.1:9001", "aula1.mp4"),
        ("127.0.0.1:9002", "Aula 1 - Redes.mp4"),
        ("127.0.0.1:9003", "semana1.mp4"),
    ]
    assert [(r.peer_id, r.file.name) for r in answer.results] == expected
    assert {r.file.sha256 for r in answer.results} == {digest("lecture")}
    assert [(r.peer_id, r.file.name) for r in by_root.results] == expected
    assert [(r.peer_id, r.file.name) for r in [*first.results, *rest.results]] == expected
    assert not rest.next_page_token


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"sha256": "abc"}, reasons.SHA256_INVALID, "sha256"),
        ({"pieces_root": "x" * 64}, reasons.PIECES_ROOT_INVALID, "pieces_root"),
        ({"name": "a.mp4", "sha256": digest("a")}, reasons.NAME_OR_QUERY_REQUIRED, None),
    ],
)
def test_a_bad_search_by_content_is_refused_with_its_reason(
    tracker: TrackerProcess, fields: dict[str, str], reason: str, field: str | None
) -> None:
    stub = tracker_pb2_grpc.TrackerServiceStub(grpc.insecure_channel(tracker.address))

    with pytest.raises(grpc.RpcError) as caught:
        stub.Search(tracker_pb2.SearchRequest(**fields), timeout=10)  # type: ignore[arg-type]

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = error_details.read(caught.value)
    assert details is not None
    assert details.reason == reason
    if field is not None:
        assert details.metadata.get("field") == field
