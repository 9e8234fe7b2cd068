"""Search paging over a real channel: every match once, in order, while the index changes."""

import base64

import grpc
import pytest
from napshare.tracker.paging import MAX_TOKEN_CHARS
from napshare.v1 import tracker_pb2


def join(tracker, port, *files):
    return tracker.stub.Join(
        tracker_pb2.JoinRequest(host="127.0.0.1", port=port, files=list(files)), timeout=10
    )


def pages(tracker, **fields):
    """Every page of a search, following next_page_token."""
    answers = []
    token = ""
    while True:
        answer = tracker.stub.Search(
            tracker_pb2.SearchRequest(page_token=token, **fields), timeout=10
        )
        answers.append(answer)
        assert answer.truncated == bool(answer.next_page_token)
        token = answer.next_page_token
        if not token:
            return answers


def keys(answers):
    return [(r.peer_id, r.file.name) for answer in answers for r in answer.results]


def test_pages_list_every_match_once_in_order(tracker, info):
    for port in (9003, 9001, 9002):
        join(tracker, port, *[info(f"f{n:03d}.mp4") for n in range(250)])

    answers = pages(tracker, query="f0 mp4", page_size=70)

    assert [len(a.results) for a in answers] == [70, 70, 70, 70, 20]
    expected = sorted(
        (f"127.0.0.1:{p}", f"f{n:03d}.mp4") for p in (9001, 9002, 9003) for n in range(100)
    )
    assert keys(answers) == expected


def test_limit_is_the_page_size_when_page_size_is_zero(tracker, info):
    join(tracker, 9001, *[info(f"a{n}.mp4") for n in range(10)])

    by_limit = pages(tracker, query="mp4", limit=4)
    by_page_size = pages(tracker, query="mp4", limit=2, page_size=5)

    assert [len(a.results) for a in by_limit] == [4, 4, 2]
    assert [len(a.results) for a in by_page_size] == [5, 5]
    assert keys(by_limit) == keys(by_page_size)


def test_exact_name_searches_page_too(tracker, info):
    for port in range(9001, 9008):
        join(tracker, port, info("same.mp4"))

    answers = pages(tracker, name="same.mp4", page_size=3)

    assert [r.peer_id for a in answers for r in a.results] == [
        f"127.0.0.1:{p}" for p in range(9001, 9008)
    ]


def test_paging_stays_correct_while_peers_join_and_leave(tracker, info):
    a = join(tracker, 9001, *[info(f"x{n}.mp4") for n in range(4)])
    join(tracker, 9003, *[info(f"x{n}.mp4") for n in range(4)])
    first = tracker.stub.Search(tracker_pb2.SearchRequest(query="x", page_size=3), timeout=10)
    assert keys([first])[-1] == ("127.0.0.1:9001", "x2.mp4")

    tracker.stub.Leave(tracker_pb2.LeaveRequest(peer_id=a.peer_id, token=a.token), timeout=10)
    join(tracker, 9002, info("x9.mp4"))
    rest = tracker.stub.Search(
        tracker_pb2.SearchRequest(query="x", page_size=3, page_token=first.next_page_token),
        timeout=10,
    )

    assert keys([rest]) == [
        ("127.0.0.1:9002", "x9.mp4"),
        ("127.0.0.1:9003", "x0.mp4"),
        ("127.0.0.1:9003", "x1.mp4"),
    ]


def test_a_repeated_page_request_sees_changes_despite_the_answer_cache(tracker, info):
    join(tracker, 9001, *[info(f"y{n}.mp4") for n in range(3)])
    first = tracker.stub.Search(tracker_pb2.SearchRequest(query="y", page_size=2), timeout=10)
    request = tracker_pb2.SearchRequest(query="y", page_size=2, page_token=first.next_page_token)
    before = tracker.stub.Search(request, timeout=10)
    join(tracker, 9002, info("y0.mp4"))
    after = tracker.stub.Search(request, timeout=10)

    assert keys([before]) == [("127.0.0.1:9001", "y2.mp4")]
    assert keys([after]) == [("127.0.0.1:9001", "y2.mp4"), ("127.0.0.1:9002", "y0.mp4")]


def forged(raw):
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        "é",
        forged(b"\x02" + bytes(8) + b"127.0.0.1:9001\x00a.mp4"),
        forged(b"\x01" + bytes(8)),
        "A" * (MAX_TOKEN_CHARS + 4),
    ],
    ids=["garbage", "not ascii", "wrong version", "no key", "too long"],
)
def test_a_garbage_page_token_is_invalid_argument(tracker, info, token):
    join(tracker, 9001, info("a.mp4"))

    with pytest.raises(grpc.RpcError) as raised:
        tracker.stub.Search(tracker_pb2.SearchRequest(query="a", page_token=token), timeout=10)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in raised.value.details()


def test_a_token_with_a_bad_key_inside_is_invalid_argument(tracker, info):
    join(tracker, 9001, info("a.mp4"), info("b.mp4"))
    good = tracker.stub.Search(tracker_pb2.SearchRequest(query="mp4", page_size=1), timeout=10)
    raw = base64.urlsafe_b64decode(good.next_page_token)
    head = raw[:9]

    for key in (b"nonsense\x00a.mp4", b"127.0.0.1:9001\x00a/b.mp4", b"127.0.0.1:9001\x00\xff"):
        with pytest.raises(grpc.RpcError) as raised:
            tracker.stub.Search(
                tracker_pb2.SearchRequest(query="mp4", page_token=forged(head + key)), timeout=10
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_token_reused_with_another_search_is_invalid_argument(tracker, info):
    join(tracker, 9001, *[info(f"a{n}.mp4") for n in range(3)])
    token = tracker.stub.Search(
        tracker_pb2.SearchRequest(query="a mp4", page_size=1), timeout=10
    ).next_page_token

    same = tracker.stub.Search(
        tracker_pb2.SearchRequest(query="  a   MP4 ", page_token=token),
        timeout=10,
    )
    assert len(same.results) == 2
    for other in ({"query": "mp4"}, {"name": "a0.mp4"}):
        with pytest.raises(grpc.RpcError) as raised:
            tracker.stub.Search(tracker_pb2.SearchRequest(page_token=token, **other), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "another search" in raised.value.details()
