"""The download plan: which stream fetches which pieces (free runs, shares of the largest
claim by rate, end-game), driven as the streams drive it, without a network.
"""

import time

from napshare.peer.downloading.plan import END_GAME_PATIENCE, Claim, Plan


def _verify(plan: Plan, claim: Claim, count: int) -> bool:
    """Let `claim`'s stream verify its next `count` pieces; whether it goes on after them."""
    going_on = True
    for _ in range(count):
        _new, going_on = plan.advance(claim, claim.next)
    return going_on


def test_the_first_stream_takes_every_free_piece_and_the_next_ones_split_the_largest() -> None:
    plan = Plan([0] * 16)

    first = plan.claim("a")
    second = plan.claim("b")
    third = plan.claim("c")

    assert first is not None
    assert second is not None
    assert third is not None
    # a asked for all 16; b took the half of a's that a had not started; c half of a's rest.
    assert (first.start, first.asked_end) == (0, 16)
    assert (second.start, second.end) == (8, 16)
    assert (third.start, third.end) == (4, 8)  # a's claim was the largest: 1-7 not started
    assert first.end == 4
    assert plan.claim("a") is None  # one stream per peer


def test_a_resumed_part_hands_out_only_the_missing_runs() -> None:
    plan = Plan([1, 1, 0, 0, 1, 0, 1, 1])

    first = plan.claim("a")
    second = plan.claim("b")

    assert first is not None
    assert second is not None
    assert (first.start, first.end) == (2, 4)
    assert (second.start, second.end) == (5, 6)
    assert plan.left == 3


def test_a_stream_stops_where_its_claim_was_cut() -> None:
    plan = Plan([0] * 8)
    first = plan.claim("a")
    assert first is not None
    second = plan.claim("b")
    assert second is not None
    assert first.end == 4

    assert _verify(plan, first, 3)  # pieces 0-2: piece 3 is still its own
    assert not _verify(plan, first, 1)  # piece 3, the last before b's: it stops
    assert not plan.complete


def test_a_faster_peer_takes_a_larger_share_of_a_slower_one() -> None:
    plan = Plan([0] * 200)
    slow = plan.claim("slow")
    assert slow is not None
    fast = plan.claim("fast")
    assert fast is not None
    assert (fast.start, fast.end) == (100, 200)
    # fast gets through its 100 pieces at 10 times slow's rate, then ends.
    slow.started = fast.started = time.monotonic() - 10
    _verify(plan, slow, 10)
    assert not _verify(plan, fast, 100)
    plan.release(fast)

    again = plan.claim("fast")

    # Of slow's 89 pieces not started, fast takes in proportion to the rates: 100 to 10.
    assert again is not None
    assert (again.start, again.end) == (slow.end, 100)
    assert again.end - again.start == round(89 * 100 / 110)


def test_a_released_claim_gives_its_pieces_back() -> None:
    plan = Plan([0] * 8)
    first = plan.claim("a")
    assert first is not None
    _verify(plan, first, 3)

    plan.release(first)  # its peer died after piece 2
    other = plan.claim("b")

    assert other is not None
    assert (other.start, other.end) == (3, 8)


def test_the_end_game_asks_a_second_peer_for_the_last_piece_and_supersedes_the_slower() -> None:
    plan = Plan([0] * 2)
    slow = plan.claim("slow")
    fast = plan.claim("fast")
    assert slow is not None
    assert fast is not None
    assert (slow.start, slow.end, fast.start, fast.end) == (0, 1, 1, 2)
    assert not _verify(plan, fast, 1)
    plan.release(fast)

    duplicate = plan.claim("fast")  # nothing free, nothing to split: slow's piece is the last

    assert duplicate is not None
    assert duplicate.duplicate
    assert (duplicate.start, duplicate.end) == (0, 1)
    assert plan.claim("third") is None  # at most two streams on one piece
    new, going_on = plan.advance(duplicate, 0)
    assert new
    assert not going_on
    assert slow.superseded.is_set()  # the slower stream is cancelled
    assert plan.complete
    new, _ = plan.advance(slow, 0)  # had it finished at the same moment: not kept twice
    assert not new


def test_a_complete_plan_has_no_work() -> None:
    plan = Plan([1, 1, 1])

    assert plan.complete
    assert plan.claim("a") is None


def test_in_the_end_game_a_stream_long_without_a_piece_gives_its_place_to_an_idle_peer() -> None:
    plan = Plan([0])
    first = plan.claim("slow1")
    second = plan.claim("slow2")  # the end-game's second stream on the only piece
    assert first is not None
    assert second is not None
    assert plan.claim("fast") is None  # two streams on it, both still within their patience

    first.progressed -= END_GAME_PATIENCE + 1  # slow1 has gone that long without a piece
    third = plan.claim("fast")

    assert third is not None
    assert (third.start, third.end) == (0, 1)
    assert first.superseded.is_set()  # slow1's stream is cancelled; slow2's goes on
    assert not second.superseded.is_set()


def test_a_peer_may_have_as_many_streams_as_the_plan_allows_each_on_its_own_pieces() -> None:
    plan = Plan([0] * 16, streams_per_peer=2)

    first = plan.claim("a")
    second = plan.claim("a")

    assert first is not None
    assert second is not None
    assert (first.start, first.end) == (0, 8)
    assert (second.start, second.end) == (8, 16)  # the half of its own first claim not started
    assert plan.claim("a") is None  # two streams for a, no more


def test_in_the_end_game_a_peer_is_never_asked_twice_for_one_piece() -> None:
    plan = Plan([0] * 2, streams_per_peer=2)
    first = plan.claim("a")
    second = plan.claim("a")
    assert first is not None
    assert second is not None
    assert (first.end, second.start) == (1, 1)
    assert not _verify(plan, first, 1)  # piece 0 in: a's first stream has nothing left
    plan.release(first)

    assert plan.claim("a") is None  # piece 1 is a's already: no duplicate from a
    duplicate = plan.claim("b")
    assert duplicate is not None
    assert (duplicate.start, duplicate.duplicate) == (1, True)
