"""The contract of an IndexStore, as tests every backend runs (subclassed once per backend).

A subclass provides the `make` fixture: make(heartbeat_interval=30.0, *, clock=None,
**options) returns a new, empty store of its backend (options: max_files, limits,
search_budget, max_candidates, max_concurrent_searches). The tests use only the public
interface: no backend's private state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from collections.abc import Callable, Iterator

import pytest
from napshare.common import reasons
from napshare.common.addresskey import AddressKey
from napshare.tracker.checks import MAX_QUERY_CHARS
from napshare.tracker.errors import (
    AddressTakenError,
    BusyError,
    CapacityError,
    InvalidRequestError,
    JoinReplayedError,
    UnauthenticatedError,
    UnknownPeerError,
)
from napshare.tracker.keywords import query_words
from napshare.tracker.limits import Limits
from napshare.tracker.store.base import (
    NONCE_SECONDS,
    DeadPeer,
    FileEntry,
    IndexStats,
    IndexStore,
    SearchOutcome,
)

from tests.support.clock import Clock

Make = Callable[..., IndexStore]

ROOMY = Limits(
    peers_per_address=100,
    files_per_address=1000,
    name_bytes_per_address=100_000,
    peers=1000,
    files=10_000,
    name_bytes=1_000_000,
)
ONE, TWO = "10.9.0.1", "10.9.0.2"  # two source addresses
# Two addresses of one IPv6 /64, which per-address limits count as one address.
SIX_A, SIX_B = "2001:db8:1:2::a", "2001:db8:1:2:ffff:ffff:ffff:b"
ALPHABET = "abcAB.-_1é日本İ"


def entry(name: str, size: int = 1) -> FileEntry:
    return FileEntry(name, size, hashlib.sha256(name.encode()).hexdigest())


def files(*names: str) -> list[FileEntry]:
    return [entry(name) for name in names]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def same_bytes(name: str, content: str, size: int = 5, *, root: bool = True) -> FileEntry:
    """A file named `name` whose bytes are those of `content`: the same sha256 (and pieces
    root, when `root`) for every name given the same content.
    """
    return FileEntry(name, size, digest(content), digest("root " + content) if root else "")


def by_content(
    snapshot: dict[str, list[FileEntry]], sha256: str = "", pieces_root: str = ""
) -> list[tuple[str, str]]:
    """What a search by content must return: a scan of every (peer, file)."""
    return sorted(
        (peer_id, file.name)
        for peer_id, files_ in snapshot.items()
        for file in files_
        if (sha256 and file.sha256 == sha256) or (pieces_root and file.pieces_root == pieces_root)
    )


def keys(outcome: SearchOutcome) -> list[tuple[str, str]]:
    return [(m.peer_id, m.file.name) for m in outcome.matches]


def every_page(store: IndexStore, limit: int, **search: str) -> Iterator[SearchOutcome]:
    """Each page of a search, following the tokens to the end."""
    token = ""
    while True:
        outcome = store.search(limit=limit, page_token=token, **search)
        assert len(outcome.matches) <= limit
        yield outcome
        token = outcome.next_page_token
        if not token:
            return


def paged(store: IndexStore, limit: int, **search: str) -> list[tuple[str, str]]:
    return [key for page in every_page(store, limit, **search) for key in keys(page)]


def brute_force(snapshot: dict[str, list[FileEntry]], words: list[str]) -> list[tuple[str, str]]:
    """What a keyword search must return: a scan of every (peer, file)."""
    return sorted(
        (peer_id, file.name)
        for peer_id, files_ in snapshot.items()
        for file in files_
        if all(word in file.name.lower() for word in words)
    )


def random_segment(rng: random.Random) -> str:
    while (name := "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7)))) in (".", ".."):
        pass
    return name


def random_name(rng: random.Random) -> str:
    """A plain name mostly, else a path of up to three segments."""
    return "/".join(random_segment(rng) for _ in range(rng.choice((1, 1, 1, 2, 3))))


def refused(reason: str, call: Callable[..., object], *args: object, **kwargs: object) -> Exception:
    """The CapacityError that `call` raises, checked to have `reason`."""
    with pytest.raises(CapacityError) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == reason
    return caught.value


class StoreContract:
    """What every backend of the index must do; subclasses provide the `make` fixture."""

    @pytest.fixture
    def make(self) -> Make:
        raise NotImplementedError

    @pytest.fixture
    def store(self, make: Make) -> IndexStore:
        return make()

    def examined_bound(self, budget: int) -> int:
        """The most entries a page of a broad search with `search_budget` `budget` looks at."""
        return budget

    # -- the nonces of signed Joins ------------------------------------------------------

    def test_a_join_nonce_is_taken_once_until_it_expires(self, store: IndexStore) -> None:
        mine, other = "a" * 64, "b" * 64
        store.take_nonce(mine, b"n" * 16, 1_000, now=1_000.0)
        with pytest.raises(JoinReplayedError) as caught:
            store.take_nonce(mine, b"n" * 16, 1_000, now=1_200.0)
        assert caught.value.reason == reasons.JOIN_REPLAYED
        store.take_nonce(other, b"n" * 16, 1_000, now=1_200.0)  # another identity's nonce
        store.take_nonce(mine, b"m" * 16, 1_000, now=1_200.0)  # another nonce
        # Kept until no tracker, whatever its clock, could take that Join any more.
        with pytest.raises(JoinReplayedError):
            store.take_nonce(mine, b"n" * 16, 1_000, now=1_000.0 + NONCE_SECONDS - 1)
        store.take_nonce(mine, b"n" * 16, 1_000, now=1_000.0 + NONCE_SECONDS + 11)

    def test_the_nonces_kept_are_bounded(self, make: Make) -> None:
        store = make(max_join_nonces=3)
        for n in range(3):
            store.take_nonce("a" * 64, bytes([n]) * 16, 1_000, now=1_000.0)
        with pytest.raises(BusyError) as caught:
            store.take_nonce("a" * 64, b"x" * 16, 1_000, now=1_100.0)
        assert caught.value.reason == reasons.JOINS_BUSY
        assert caught.value.retry_delay is not None
        assert 0 < caught.value.retry_delay <= NONCE_SECONDS
        assert caught.value.metadata == {"limit": "3", "flag": "--max-join-nonces"}
        store.take_nonce("a" * 64, b"x" * 16, 1_000, now=1_000.0 + NONCE_SECONDS + 11)

    # -- how often large Joins come ----------------------------------------------------------

    def test_a_large_join_from_one_address_or_identity_comes_once_an_interval(
        self, make: Make
    ) -> None:
        clock = Clock()
        store = make(clock=clock, large_join_files=3, large_join_interval=30)
        big, small = files("a", "b", "c"), files("a", "b")
        store.join("10.0.0.1", 1, big, ONE, identity="i" * 64)
        with pytest.raises(BusyError) as caught:
            store.join("10.0.0.1", 1, files("d", "e", "f"), ONE, identity="i" * 64)
        assert caught.value.reason == reasons.LARGE_JOIN_TOO_SOON
        assert caught.value.retry_delay == pytest.approx(30)
        assert caught.value.metadata == {"limit": "30", "flag": "--large-join-interval"}
        clock.now += 10
        with pytest.raises(BusyError):  # the same identity from elsewhere
            store.join("10.0.0.2", 1, big, TWO, identity="i" * 64)
        with pytest.raises(BusyError) as caught:  # the same address, another identity
            store.join("10.0.0.3", 1, big, ONE, identity="j" * 64)
        assert caught.value.retry_delay == pytest.approx(20)
        store.join("10.0.0.1", 2, small, ONE, identity="i" * 64)  # small ones come any time
        store.join("10.0.0.2", 1, big, TWO, identity="j" * 64)  # anyone else
        clock.now += 20
        store.join("10.0.0.1", 1, files("d", "e", "f"), ONE, identity="i" * 64)
        assert [f.name for f in store.files_of("10.0.0.1:1") or []] == ["d", "e", "f"]

    # -- registrations and search ----------------------------------------------------------

    def test_keyword_search_equals_a_brute_force_scan_through_churn(self, make: Make) -> None:
        rng = random.Random(2024)
        store = make()
        tokens = {}
        for step in range(300):
            port = rng.randint(1, 30)
            action = rng.random()
            if action < 0.5 or port not in tokens:
                names = {random_name(rng) for _ in range(rng.randint(0, 12))}
                tokens[port] = store.join("10.0.0.1", port, [entry(n) for n in names]).token
            elif action < 0.7:
                names = {random_name(rng) for _ in range(rng.randint(1, 5))}
                store.update(f"10.0.0.1:{port}", tokens[port], [entry(n, step) for n in names])
            elif action < 0.8:
                held = [f.name for f in store.files_of(f"10.0.0.1:{port}") or []]
                gone = [*rng.sample(held, min(len(held), rng.randint(0, 4))), random_name(rng)]
                store.update(f"10.0.0.1:{port}", tokens[port], [], gone)
            else:
                store.leave(f"10.0.0.1:{port}", tokens.pop(port))
            if step % 15 == 0:
                snapshot = store.snapshot()
                for _ in range(10):
                    query = " ".join(random_name(rng)[: rng.randint(1, 4)] for _ in range(2))
                    outcome = store.search(query=query, limit=1000)
                    assert keys(outcome) == brute_force(snapshot, query_words(query)), query
                    assert not outcome.truncated
                    assert paged(store, rng.randint(1, 5), query=query) == keys(outcome), query
        store.expire()
        assert store.audit() == []

    def test_content_search_equals_a_brute_force_scan_through_churn(self, make: Make) -> None:
        rng = random.Random(22)
        store = make()
        contents = [f"bytes {n}" for n in range(6)]

        def announced(size: int) -> list[FileEntry]:
            names = {random_name(rng) for _ in range(rng.randint(0, 8))}
            return [
                same_bytes(n, rng.choice(contents), size, root=rng.random() < 0.7) for n in names
            ]

        tokens = {}
        for step in range(300):
            port = rng.randint(1, 20)
            action = rng.random()
            if action < 0.45 or port not in tokens:
                tokens[port] = store.join("10.0.0.1", port, announced(5)).token
            elif action < 0.7:  # new names, and new bytes under names already shared
                store.update(f"10.0.0.1:{port}", tokens[port], announced(step))
            elif action < 0.85:
                held = [f.name for f in store.files_of(f"10.0.0.1:{port}") or []]
                gone = rng.sample(held, min(len(held), rng.randint(0, 4)))
                store.update(f"10.0.0.1:{port}", tokens[port], [], gone)
            else:
                store.leave(f"10.0.0.1:{port}", tokens.pop(port))
            if step % 20 == 0:
                snapshot = store.snapshot()
                for content in contents:
                    for search in (
                        {"sha256": digest(content)},
                        {"pieces_root": digest("root " + content)},
                    ):
                        outcome = store.search(limit=1000, **search)
                        assert keys(outcome) == by_content(snapshot, **search), search
                        assert paged(store, rng.randint(1, 4), **search) == keys(outcome)
        store.expire()
        assert store.audit() == []

    def test_a_search_by_content_finds_the_same_bytes_under_every_name(
        self, store: IndexStore
    ) -> None:
        store.join("10.0.0.1", 1, [same_bytes("aula1.mp4", "lecture"), entry("other.txt")])
        store.join("10.0.0.2", 1, [same_bytes("Aula 1 - Redes.mp4", "lecture")])
        store.join("10.0.0.3", 1, [same_bytes("aula1.mp4", "another lecture")])
        store.join("10.0.0.4", 1, [same_bytes("redes.mp4", "lecture", root=False)])
        expected = [
            ("10.0.0.1:1", "aula1.mp4"),
            ("10.0.0.2:1", "Aula 1 - Redes.mp4"),
            ("10.0.0.4:1", "redes.mp4"),
        ]

        outcome = store.search(sha256=digest("lecture"))
        assert keys(outcome) == expected
        assert {m.file.sha256 for m in outcome.matches} == {digest("lecture")}
        # Hex of either case; a pieces root finds the holders that announced one.
        assert keys(store.search(sha256=digest("lecture").upper())) == expected
        assert keys(store.search(pieces_root=digest("root lecture"))) == expected[:2]
        assert paged(store, 1, sha256=digest("lecture")) == expected
        assert keys(store.search(sha256=digest("nobody's"))) == []
        assert keys(store.search(pieces_root=digest("lecture"))) == []  # a sha256 is no root

    def test_a_search_by_content_follows_changes_of_the_bytes(self, store: IndexStore) -> None:
        one = store.join("10.0.0.1", 1, [same_bytes("a.mp4", "old"), same_bytes("b.mp4", "old")])
        two = store.join("10.0.0.2", 1, [same_bytes("a.mp4", "old")])

        store.update(one.peer_id, one.token, [same_bytes("a.mp4", "new")])  # a.mp4 changed
        assert keys(store.search(sha256=digest("old"))) == [
            ("10.0.0.1:1", "b.mp4"),
            ("10.0.0.2:1", "a.mp4"),
        ]
        assert keys(store.search(sha256=digest("new"))) == [("10.0.0.1:1", "a.mp4")]
        store.update(one.peer_id, one.token, [], ["b.mp4"])
        store.leave(two.peer_id, two.token)
        assert keys(store.search(sha256=digest("old"))) == []
        assert keys(store.search(pieces_root=digest("root new"))) == [("10.0.0.1:1", "a.mp4")]
        store.expire()
        assert store.audit() == []

    def test_a_bad_search_by_content_is_invalid(self, store: IndexStore) -> None:
        store.join("10.0.0.1", 1, [same_bytes("a.mp4", "x"), same_bytes("b.mp4", "x")])
        token = store.search(sha256=digest("x"), limit=1).next_page_token
        cases = [
            ({"sha256": "12ab"}, reasons.SHA256_INVALID),
            ({"sha256": "g" * 64}, reasons.SHA256_INVALID),
            ({"pieces_root": "0" * 63}, reasons.PIECES_ROOT_INVALID),
            ({"name": "a.mp4", "sha256": digest("x")}, reasons.NAME_OR_QUERY_REQUIRED),
            ({"sha256": digest("x"), "pieces_root": digest("x")}, reasons.NAME_OR_QUERY_REQUIRED),
            ({"pieces_root": digest("x"), "page_token": token}, reasons.PAGE_TOKEN_MISMATCH),
            ({"name": "a.mp4", "page_token": token}, reasons.PAGE_TOKEN_MISMATCH),
        ]
        for search, reason in cases:
            with pytest.raises(InvalidRequestError) as caught:
                store.search(**search)  # type: ignore[arg-type]
            assert caught.value.reason == reason, search
        assert keys(store.search(sha256=digest("x"), page_token=token)) == [("10.0.0.1:1", "b.mp4")]

    def test_exact_search_is_case_sensitive_and_sorted(self, store: IndexStore) -> None:
        for port in (3, 1, 2):
            store.join("10.0.0.8", port, [entry("A.mp4"), entry("a.mp4")])

        assert keys(store.search(name="a.mp4")) == [
            ("10.0.0.8:1", "a.mp4"),
            ("10.0.0.8:2", "a.mp4"),
            ("10.0.0.8:3", "a.mp4"),
        ]

    def test_keywords_ignore_case_beyond_ascii(self, store: IndexStore) -> None:
        store.join("10.0.0.8", 1, files("İstanbul Ödev.PDF", "ÉTÉ.mp3", "plain.txt"))

        assert keys(store.search(query="i̇stanbul ödev pdf")) == [
            ("10.0.0.8:1", "İstanbul Ödev.PDF")
        ]
        assert keys(store.search(query="été")) == [("10.0.0.8:1", "ÉTÉ.mp3")]
        assert keys(store.search(query="É")) == [("10.0.0.8:1", "ÉTÉ.mp3")]  # words are lowered too

    def test_a_bad_rejoin_keeps_the_old_registration(self, store: IndexStore) -> None:
        first = store.join("10.0.0.1", 1, [entry("x.mp4")])
        before = store.snapshot()

        with pytest.raises(InvalidRequestError):
            store.join("10.0.0.1", 1, [entry("new.mp4"), FileEntry("bad/../name", 1, "a" * 64)])

        assert store.snapshot() == before
        store.heartbeat(first.peer_id, first.token)

    def test_a_rejoin_replaces_the_files_and_the_token(self, store: IndexStore) -> None:
        first = store.join("10.0.0.1", 1, files("a", "b", "c"))
        second = store.join("10.0.0.1", 1, [entry("b", 7), entry("d")])

        assert store.files_of(first.peer_id) == [entry("b", 7), entry("d")]
        assert store.search(name="a").matches == []
        with pytest.raises(UnauthenticatedError):
            store.heartbeat(first.peer_id, first.token)
        store.heartbeat(second.peer_id, second.token)
        assert store.stats().entries == 2
        assert store.audit() == []

    def test_capacity_counts_new_names_only(self, make: Make) -> None:
        store = make(max_files=3)
        peer = store.join("10.0.0.1", 1, [entry("a"), entry("b")])
        store.update(peer.peer_id, peer.token, [entry("a", 5), entry("c")])

        with pytest.raises(CapacityError) as caught:
            store.update(peer.peer_id, peer.token, [entry("d")])
        assert str(caught.value) == "peer 10.0.0.1:1 would share 4 files; the limit is 3 per peer"
        with pytest.raises(InvalidRequestError):
            store.join("10.0.0.1", 2, [entry(n) for n in "wxyz"])
        assert [f.size for f in store.files_of(peer.peer_id) or []] == [5, 1, 1]

    def test_update_removes_names_of_the_callers_own_registration_only(
        self, store: IndexStore
    ) -> None:
        a = store.join("10.0.0.1", 1, [entry("x.mp4"), entry("y.mp4"), entry("z.mp4")])
        b = store.join("10.0.0.1", 2, [entry("x.mp4")])
        seen = store.search(name="x.mp4").generation

        store.update(a.peer_id, a.token, [entry("w.mp4")], ["x.mp4", "z.mp4", "never.mp4"])

        assert [f.name for f in store.files_of(a.peer_id) or []] == ["w.mp4", "y.mp4"]
        assert [f.name for f in store.files_of(b.peer_id) or []] == ["x.mp4"]
        assert [m.peer_id for m in store.search(name="x.mp4").matches] == [b.peer_id]
        assert store.search(name="z.mp4").matches == []
        assert store.stats().entries == 3
        assert not store.unchanged_since(seen)

    def test_removing_only_unknown_names_changes_nothing_but_renews_the_lease(
        self, make: Make
    ) -> None:
        clock = Clock()
        store = make(10, clock=clock)
        a = store.join("10.0.0.1", 1, [entry("x.mp4")])
        seen = store.search(name="x.mp4").generation
        clock.now += 25

        store.update(a.peer_id, a.token, [], ["nope.mp4", "nope.mp4"])
        clock.now += 25

        assert store.unchanged_since(seen) is False  # the gathering window ended meanwhile
        assert store.expire() == []
        assert [f.name for f in store.files_of(a.peer_id) or []] == ["x.mp4"]
        seen = store.search(name="x.mp4").generation
        store.update(a.peer_id, a.token, [], ["nope.mp4"])
        assert store.unchanged_since(seen)

    @pytest.mark.parametrize(
        ("files_", "removed", "word"),
        [
            ([], ["a/../b.mp4"], r"removed_names\[0\]"),
            ([], ["ok.mp4", ""], r"removed_names\[1\]"),
            ([entry("x.mp4")], ["x.mp4"], "both"),
            ([], ["n"] * 4, "limit"),
        ],
        ids=["slash", "empty", "in both lists", "too many"],
    )
    def test_bad_removed_names_change_nothing(
        self, make: Make, files_: list[FileEntry], removed: list[str], word: str
    ) -> None:
        store = make(max_files=3)
        a = store.join("10.0.0.1", 1, [entry("x.mp4")])
        before = store.snapshot()

        with pytest.raises(InvalidRequestError, match=word):
            store.update(a.peer_id, a.token, files_, removed)

        assert store.snapshot() == before

    def test_capacity_counts_removals_first(self, make: Make) -> None:
        store = make(max_files=2)
        peer = store.join("10.0.0.1", 1, [entry("a"), entry("b")])

        store.update(peer.peer_id, peer.token, [entry("c")], ["a"])

        assert [f.name for f in store.files_of(peer.peer_id) or []] == ["b", "c"]

    def test_tokens_are_checked_per_peer(self, store: IndexStore) -> None:
        a = store.join("10.0.0.1", 1, [])
        b = store.join("10.0.0.1", 2, [])

        with pytest.raises(UnauthenticatedError) as caught:
            store.leave(a.peer_id, b.token)
        assert str(caught.value) == (
            "the token does not match peer 10.0.0.1:1; use the token of its latest Join"
        )
        with pytest.raises(UnauthenticatedError):
            store.leave(a.peer_id, "é")
        store.leave(a.peer_id, a.token)
        assert store.snapshot() == {b.peer_id: []}
        with pytest.raises(UnknownPeerError) as unknown:
            store.heartbeat(a.peer_id, a.token)
        assert unknown.value.reason == reasons.PEER_NOT_REGISTERED
        with pytest.raises(InvalidRequestError) as bad:
            store.heartbeat("not an address", a.token)
        assert bad.value.reason == reasons.PEER_ID_INVALID

    def test_the_pieces_root_is_stored_and_listed_per_holder(self, store: IndexStore) -> None:
        root = hashlib.sha256(b"root").hexdigest()
        digest = hashlib.sha256(b"x").hexdigest()
        a = store.join("10.0.0.1", 1, [FileEntry("x.mp4", 5, digest, root)])
        b = store.join("10.0.0.2", 1, [FileEntry("x.mp4", 5, digest)])  # a peer without roots
        store.join("10.0.0.3", 1, [FileEntry("empty", 0, hashlib.sha256(b"").hexdigest())])

        found = {m.peer_id: m.file for m in store.search(name="x.mp4").matches}

        assert found[a.peer_id] == FileEntry("x.mp4", 5, digest, root)
        assert found[b.peer_id] == FileEntry("x.mp4", 5, digest, "")
        assert store.search(name="empty").matches[0].file.pieces_root == ""

    @pytest.mark.parametrize(
        ("size", "root"), [(5, "A" * 64), (5, "a" * 63), (5, "xyz"), (0, "a" * 64)]
    )
    def test_a_bad_pieces_root_is_refused(self, store: IndexStore, size: int, root: str) -> None:
        with pytest.raises(InvalidRequestError) as caught:
            store.join("10.0.0.1", 1, [FileEntry("x.mp4", size, "b" * 64, root)])
        assert caught.value.reason == "PIECES_ROOT_INVALID"
        assert caught.value.metadata == {"field": "files[0].pieces_root"}

    def test_a_search_lists_the_holders_certificate(self, store: IndexStore) -> None:
        store.join("10.0.0.1", 1, files("a.mp4"), identity="f" * 64, certificate=b"\x30der")
        store.join("10.0.0.1", 2, files("a.mp4"))

        found = store.search(name="a.mp4").matches

        assert [(m.peer_id, m.certificate) for m in found] == [
            ("10.0.0.1:1", b"\x30der"),
            ("10.0.0.1:2", b""),
        ]

    def test_a_search_says_whether_the_tracker_reached_the_holder(self, store: IndexStore) -> None:
        store.join("10.0.0.1", 1, files("a.mp4"), identity="f" * 64, reachable=True)
        store.join("10.0.0.1", 2, files("a.mp4"), identity="e" * 64, reachable=False)

        found = store.search(query="a.mp4").matches

        assert [(m.peer_id, m.reachable) for m in found] == [
            ("10.0.0.1:1", True),
            ("10.0.0.1:2", False),
        ]

    def test_contact_tells_how_to_reach_a_registered_peer(self, store: IndexStore) -> None:
        first = store.join(
            "10.0.0.1", 8776, files("a"), "198.51.100.7", local_addresses=("10.0.0.1:1",)
        )
        assert store.contact("10.0.0.1:8776").local_addresses == ("10.0.0.1:1",)
        second = store.join(
            "10.0.0.1",
            8776,
            files("a"),
            "198.51.100.7",
            identity="c" * 64,
            reachable=True,
            local_addresses=("192.168.1.20:8776", "[fe80::1]:8776"),
        )

        contact = store.contact("10.0.0.1:8776")

        assert contact.token == second.token != first.token
        assert contact.local_addresses == ("192.168.1.20:8776", "[fe80::1]:8776")
        assert (contact.source, contact.identity, contact.reachable) == (
            "198.51.100.7",
            "c" * 64,
            True,
        )
        anonymous = store.join("10.0.0.1", 8777, [])
        assert store.contact(anonymous.peer_id).source is None
        with pytest.raises(UnknownPeerError):
            store.contact("10.0.0.1:9")

    def test_verify_checks_the_token_without_renewing_the_lease(self, make: Make) -> None:
        clock = Clock()
        store = make(10, clock=clock)
        registration = store.join("10.0.0.1", 8776, files("a"))
        clock.now += 29
        store.verify(registration.peer_id, registration.token)
        with pytest.raises(UnauthenticatedError):
            store.verify(registration.peer_id, "0" * 32)
        with pytest.raises(InvalidRequestError):
            store.verify("not an address", registration.token)
        clock.now += 1  # three intervals after the Join: verify renewed nothing
        with pytest.raises(UnknownPeerError):
            store.verify(registration.peer_id, registration.token)
        with pytest.raises(UnknownPeerError):
            store.contact(registration.peer_id)

    # -- who may take an address -----------------------------------------------------------

    def test_a_live_registration_keeps_its_address_from_another_identity(
        self, store: IndexStore
    ) -> None:
        store.join("10.0.0.1", 1, files("a"), identity="a" * 64, reachable=True)

        for identity, proven in (("b" * 64, False), ("b" * 64, True), ("", False)):
            with pytest.raises(AddressTakenError) as caught:
                store.claim("10.0.0.1", 1, identity, may_prove=proven)
            assert caught.value.reason == reasons.ADDRESS_TAKEN
            with pytest.raises(AddressTakenError):
                store.join("10.0.0.1", 1, files("b"), identity=identity, reachable=proven)
        assert store.claim("10.0.0.1", 1, "a" * 64) == "10.0.0.1:1"
        assert [f.name for f in store.files_of("10.0.0.1:1") or []] == ["a"]

    def test_a_reached_join_takes_an_address_from_one_never_reached_there(
        self, store: IndexStore
    ) -> None:
        store.join("10.0.0.1", 1, files("a"), identity="a" * 64, reachable=False)

        with pytest.raises(AddressTakenError):
            store.join("10.0.0.1", 1, files("b"), identity="b" * 64, reachable=False)
        store.join("10.0.0.1", 1, files("b"), identity="b" * 64, reachable=True)

        assert [m.peer_id for m in store.search(name="b").matches] == ["10.0.0.1:1"]
        assert store.search(name="a").matches == []

    def test_a_bad_address_is_invalid(self, store: IndexStore) -> None:
        for host, port in (("bad host", 1), ("10.0.0.1", 0), ("10.0.0.1", 70000)):
            with pytest.raises(InvalidRequestError) as caught:
                store.join(host, port, [])
            assert caught.value.reason == reasons.ADDRESS_INVALID

    # -- leases ----------------------------------------------------------------------------

    def test_a_silent_peer_expires_after_three_intervals(self, make: Make) -> None:
        clock = Clock()
        store = make(10, clock=clock)
        silent = store.join("10.0.0.1", 1, [entry("x.mp4"), entry("y.mp4")])
        beating = store.join("10.0.0.1", 2, [entry("x.mp4")])

        clock.now += 20
        store.heartbeat(beating.peer_id, beating.token)
        clock.now += 9.9
        assert store.expire() == []
        clock.now += 0.1  # 30 s since the Join

        assert store.expire() == [DeadPeer(silent.peer_id, ["x.mp4", "y.mp4"])]
        assert [m.peer_id for m in store.search(name="x.mp4").matches] == [beating.peer_id]
        with pytest.raises(UnknownPeerError):
            store.heartbeat(silent.peer_id, silent.token)
        store.update(beating.peer_id, beating.token, [])  # renews, 30 s after the Join
        clock.now += 29.9
        assert store.expire() == []
        assert store.stats().peers == 1

    def test_an_expired_peer_is_gone_even_before_expire_runs(self, make: Make) -> None:
        clock = Clock()
        store = make(1, clock=clock)
        gone = store.join("10.0.0.1", 1, [entry("x.mp4")])
        clock.now += 3

        assert store.search(name="x.mp4").matches == []
        assert store.search(query="mp4").matches == []
        with pytest.raises(UnknownPeerError):
            store.update(gone.peer_id, gone.token, [entry("z")])
        assert store.expire() == [DeadPeer(gone.peer_id, ["x.mp4"])]  # reported once
        assert store.expire() == []
        assert store.stats() == IndexStats(0, 0, 0)

    def test_a_peer_that_left_is_not_reported_dead(self, store: IndexStore) -> None:
        a = store.join("10.0.0.1", 1, files("a", "b"))
        store.leave(a.peer_id, a.token)

        assert store.search(name="a").matches == []
        assert store.expire() == []
        assert store.stats() == IndexStats(0, 0, 0)

    def test_a_kept_answer_holds_until_a_change_searches_can_see(self, make: Make) -> None:
        clock = Clock()
        store = make(10, clock=clock)
        clock.now += 30  # past the gathering window
        a = store.join("10.0.0.1", 1, [entry("x")])
        seen = store.search(name="x").generation

        store.heartbeat(a.peer_id, a.token)
        store.search(name="x")
        assert store.unchanged_since(seen)
        store.join("10.0.0.1", 2, [entry("y")])  # its lease runs out at 60
        assert not store.unchanged_since(seen)  # a Join
        clock.now += 10
        store.heartbeat(a.peer_id, a.token)  # a's lease runs out at 70
        seen = store.search(name="x").generation
        assert store.unchanged_since(seen)
        clock.now += 19.9
        assert store.unchanged_since(seen)
        clock.now += 0.1
        assert not store.unchanged_since(seen)  # 10.0.0.1:2's lease ran out
        seen = store.search(name="x").generation
        assert store.unchanged_since(seen)
        clock.now += 10
        assert not store.unchanged_since(seen)  # and now a's
        assert sorted(d.peer_id for d in store.expire()) == ["10.0.0.1:1", "10.0.0.1:2"]

    def test_searches_say_gathering_for_one_lease_after_a_new_store_starts(
        self, make: Make
    ) -> None:
        clock = Clock()
        store = make(10, clock=clock)

        assert store.search(name="aula.mp4").gathering
        assert store.search(query="aula").gathering
        clock.now += 29.9
        assert store.search(name="aula.mp4").gathering
        clock.now += 0.1
        assert not store.search(name="aula.mp4").gathering
        assert not store.search(query="aula").gathering

    def test_a_peer_that_joins_again_while_its_files_go_replaces_them(
        self, store: IndexStore
    ) -> None:
        old = store.join("10.0.0.1", 1, [entry(f"{n}.mp4") for n in range(3000)], ONE)
        store.leave(old.peer_id, old.token)
        new = store.join("10.0.0.1", 1, files("1.mp4", "new.mp4"), ONE)

        assert [m.file.name for m in store.search(query="mp4").matches] == ["1.mp4", "new.mp4"]
        assert store.stats().entries == 2
        assert store.expire() == []  # a peer that left is not reported dead
        assert store.files_of(new.peer_id) == files("1.mp4", "new.mp4")
        assert store.audit() == []

    # -- bounded search and paging ---------------------------------------------------------

    def test_a_broad_search_looks_at_a_bounded_number_of_entries(self, make: Make) -> None:
        store = make(3600, search_budget=500, max_candidates=100)
        for peer in range(4):
            names = [f"clip-{peer * 1000 + n}.mp4" for n in range(1000)]
            store.join("127.0.0.1", 10_000 + peer, [FileEntry(n, 1, "0" * 64) for n in names])

        outcome = store.search(query="mp4", limit=100)
        assert len(outcome.matches) == 100
        assert outcome.truncated
        assert outcome.examined <= self.examined_bound(500)
        assert [m.peer_id for m in outcome.matches] == ["127.0.0.1:10000"] * 100

        # "p-7" is in 111 names, all of the first peer: pages walk the other peers for nothing.
        pages = list(every_page(store, 1000, query="CLIP-7 mp4"))
        assert all(page.examined <= self.examined_bound(500) for page in pages)
        assert any(page.truncated and len(page.matches) < 1000 for page in pages)
        found = [key for page in pages for key in keys(page)]
        assert found == brute_force(store.snapshot(), ["clip-7", "mp4"])
        assert len(found) == 111

        # Words shorter than a trigram have no bucket: every name is a candidate.
        short = store.search(query="9.", limit=10)
        assert short.examined <= self.examined_bound(500)
        assert [m.file.name for m in short.matches][:2] == ["clip-109.mp4", "clip-119.mp4"]

    @pytest.mark.parametrize("budget", [1, 3, 7, 50])
    def test_pages_cut_by_the_budget_list_every_match_once_in_order(
        self, make: Make, budget: int
    ) -> None:
        store = make(3600, search_budget=budget, max_candidates=0)  # every keyword search walks
        shared = [
            FileEntry(f"Shared {n}.MP4", n, hashlib.sha256(b"%d" % n).hexdigest()) for n in range(4)
        ]
        for peer in range(6):
            own = [
                FileEntry(f"own {peer}-{n}.{'mp4' if n % 3 else 'txt'}", n, "0" * 64)
                for n in range(9)
            ]
            store.join("127.0.0.1", 7000 - peer, [*own, *shared[: peer % 5]])
        store.join("127.0.0.1", 6000, [])  # a peer without files

        for limit in (1, 2, 5, 1000):
            pages = list(every_page(store, limit, query="mp4"))
            assert all(page.examined <= self.examined_bound(budget) for page in pages)
            found = [key for page in pages for key in keys(page)]
            assert found == brute_force(store.snapshot(), ["mp4"])

    @pytest.mark.parametrize("max_candidates", [0, 10_000])
    def test_pages_stay_correct_while_peers_join_and_leave(
        self, make: Make, max_candidates: int
    ) -> None:
        store = make(3600, search_budget=4, max_candidates=max_candidates)
        tokens = {}
        for port in (5001, 5003, 5005):
            names = [FileEntry(f"song {port} {n}.ogg", n, "0" * 64) for n in range(5)]
            tokens[port] = store.join("127.0.0.1", port, names).token
        first = store.search(query="song", limit=3)
        store.leave("127.0.0.1:5003", tokens[5003])  # behind and ahead of the cursor
        store.join("127.0.0.1", 5004, [FileEntry("song late.ogg", 1, "0" * 64)])

        found = keys(first)
        token = first.next_page_token
        while token:
            page = store.search(query="song", limit=3, page_token=token)
            found += keys(page)
            token = page.next_page_token

        assert found == [
            *[("127.0.0.1:5001", f"song 5001 {n}.ogg") for n in range(5)],
            ("127.0.0.1:5004", "song late.ogg"),
            *[("127.0.0.1:5005", f"song 5005 {n}.ogg") for n in range(5)],
        ]

    def test_exact_name_searches_page_too(self, store: IndexStore) -> None:
        for port in range(9001, 9008):
            store.join("127.0.0.1", port, files("same.mp4", "other.mp4"))

        assert paged(store, 3, name="same.mp4") == [
            (f"127.0.0.1:{port}", "same.mp4") for port in range(9001, 9008)
        ]

    def test_a_bad_search_is_invalid(self, store: IndexStore) -> None:
        store.join("127.0.0.1", 1, files("a0.mp4", "a1.mp4", "a2.mp4"))
        token = store.search(query="a mp4", limit=1).next_page_token

        assert keys(store.search(query="  a   MP4 ", page_token=token)) == [
            ("127.0.0.1:1", "a1.mp4"),
            ("127.0.0.1:1", "a2.mp4"),
        ]
        cases = [
            ({"query": "mp4", "page_token": token}, reasons.PAGE_TOKEN_MISMATCH),
            ({"name": "a0.mp4", "page_token": token}, reasons.PAGE_TOKEN_MISMATCH),
            ({"query": "mp4", "page_token": "garbage!"}, reasons.PAGE_TOKEN_INVALID),
            ({"query": "mp4", "page_token": token[:-4] + "AAAA"}, reasons.PAGE_TOKEN_INVALID),
            ({"query": "a" * (MAX_QUERY_CHARS + 1)}, reasons.QUERY_TOO_LONG),
            ({"query": "   "}, reasons.QUERY_EMPTY),
            ({"name": "a", "query": "b"}, reasons.NAME_OR_QUERY_REQUIRED),
            ({"name": "a/../b"}, reasons.NAME_INVALID),
        ]
        for search, reason in cases:
            with pytest.raises(InvalidRequestError) as caught:
                store.search(**search)  # type: ignore[arg-type]
            assert caught.value.reason == reason, search

    # -- folders: search by the words of any segment, browse one peer ---------------------

    def test_keywords_match_the_words_of_every_segment_of_a_path(self, store: IndexStore) -> None:
        store.join("10.0.0.1", 1, files("Curso/Semana1/aula1.mp4", "semana2/aula1.mp4", "x.txt"))

        assert keys(store.search(query="semana1 AULA")) == [
            ("10.0.0.1:1", "Curso/Semana1/aula1.mp4")
        ]
        assert keys(store.search(query="curso")) == [("10.0.0.1:1", "Curso/Semana1/aula1.mp4")]
        assert [n for _, n in keys(store.search(query="aula1"))] == [
            "Curso/Semana1/aula1.mp4",
            "semana2/aula1.mp4",
        ]
        assert keys(store.search(name="semana2/aula1.mp4")) == [("10.0.0.1:1", "semana2/aula1.mp4")]
        assert keys(store.search(name="aula1.mp4")) == []

    def test_browse_lists_one_peers_files_in_name_order(self, store: IndexStore) -> None:
        names = ["b.txt", "a/b.txt", "a.txt", "a0.txt", "a/c/d.txt", "é/x", "日本/y", "z", "a-b/c"]
        mine = store.join("10.0.0.1", 1, files(*names), identity="f" * 64, certificate=b"\x30c")
        store.join("10.0.0.1", 2, files("a/other.txt"))

        outcome = store.browse(mine.peer_id)

        assert [f.name for f in outcome.files] == sorted(names)
        assert outcome.files[0] == entry("a-b/c")
        assert (outcome.next_page_token, outcome.certificate, outcome.reachable) == (
            "",
            b"\x30c",
            False,
        )

    @pytest.mark.parametrize(
        ("folder", "listed"),
        [
            ("a", ["a/b.txt", "a/c/d.txt", "a/c/e.txt"]),
            ("a/", ["a/b.txt", "a/c/d.txt", "a/c/e.txt"]),
            ("a/c", ["a/c/d.txt", "a/c/e.txt"]),
            ("a/b.txt", []),
            ("ab", []),
            ("b", ["b/x"]),
        ],
    )
    def test_browse_of_a_folder_lists_what_is_under_it_at_any_depth(
        self, store: IndexStore, folder: str, listed: list[str]
    ) -> None:
        names = ["a.txt", "a/b.txt", "a/c/d.txt", "a/c/e.txt", "a0", "a-b/x", "b/x", "aa/y"]
        mine = store.join("10.0.0.1", 1, files(*names))

        assert [f.name for f in store.browse(mine.peer_id, folder).files] == listed

    def test_browse_pages_list_every_file_once_while_files_change(self, store: IndexStore) -> None:
        names = [f"s{week}/aula{n}.mp4" for week in range(1, 4) for n in range(1, 5)]
        mine = store.join("10.0.0.1", 1, files(*names, "top.txt"))
        first = store.browse(mine.peer_id, "s", limit=5)
        assert first.files == []  # "s" is no folder of the peer's: "s1/" is
        first = store.browse(mine.peer_id, limit=5)
        store.update(
            mine.peer_id, mine.token, files("s1/aula0.mp4", "s9/late.mp4"), ["s3/aula4.mp4"]
        )

        found = [f.name for f in first.files]
        token = first.next_page_token
        pages = 1
        while token:
            page = store.browse(mine.peer_id, limit=5, page_token=token)
            assert len(page.files) <= 5
            found += [f.name for f in page.files]
            token = page.next_page_token
            pages += 1

        # s1/aula0.mp4 came behind the cursor; the others changed ahead of it.
        assert found == sorted({*names, "top.txt", "s9/late.mp4"} - {"s3/aula4.mp4"})
        assert pages == 3

    def test_a_browse_page_token_belongs_to_its_peer_and_folder(self, store: IndexStore) -> None:
        one = store.join("10.0.0.1", 1, files("a/1", "a/2", "a/3", "b/1"))
        two = store.join("10.0.0.1", 2, files("a/1", "a/2", "a/3"))
        token = store.browse(one.peer_id, "a", limit=1).next_page_token

        assert [f.name for f in store.browse(one.peer_id, "a/", page_token=token).files] == [
            "a/2",
            "a/3",
        ]
        for other in (
            {"peer_id": two.peer_id, "folder": "a"},
            {"peer_id": one.peer_id, "folder": "b"},
            {"peer_id": one.peer_id, "folder": ""},
        ):
            with pytest.raises(InvalidRequestError) as caught:
                store.browse(**other, page_token=token)  # type: ignore[arg-type]
            assert caught.value.reason == reasons.PAGE_TOKEN_MISMATCH
        search_token = store.search(query="a", limit=1).next_page_token
        with pytest.raises(InvalidRequestError) as caught:
            store.browse(one.peer_id, page_token=search_token)
        assert caught.value.reason == reasons.PAGE_TOKEN_MISMATCH
        with pytest.raises(InvalidRequestError) as caught:
            store.browse(one.peer_id, page_token=token[:-4] + "AAAA")
        assert caught.value.reason == reasons.PAGE_TOKEN_INVALID

    def test_a_bad_browse_is_invalid(self, store: IndexStore) -> None:
        store.join("10.0.0.1", 1, files("a/1"))
        cases = [
            ({"peer_id": "nobody"}, reasons.PEER_ID_INVALID, "peer_id"),
            ({"peer_id": "10.0.0.1:1", "folder": "../"}, reasons.NAME_INVALID, "folder"),
            ({"peer_id": "10.0.0.1:1", "folder": "/a"}, reasons.NAME_INVALID, "folder"),
            ({"peer_id": "10.0.0.1:1", "folder": "a//"}, reasons.NAME_INVALID, "folder"),
            ({"peer_id": "10.0.0.1:1", "folder": ".napshare"}, reasons.NAME_INVALID, "folder"),
        ]
        for browse, reason, field in cases:
            with pytest.raises(InvalidRequestError) as caught:
                store.browse(**browse)  # type: ignore[arg-type]
            assert (caught.value.reason, caught.value.metadata.get("field")) == (reason, field)

    def test_browse_of_a_peer_that_is_not_registered_is_not_found(self, make: Make) -> None:
        clock = Clock()
        store = make(10, clock=clock)
        left = store.join("10.0.0.1", 1, files("a"))
        silent = store.join("10.0.0.1", 2, files("a"))
        store.leave(left.peer_id, left.token)
        assert [f.name for f in store.browse(silent.peer_id).files] == ["a"]
        clock.now += 30

        for peer_id in (left.peer_id, silent.peer_id, "10.0.0.1:3"):
            with pytest.raises(UnknownPeerError) as caught:
                store.browse(peer_id)
            assert caught.value.reason == reasons.PEER_NOT_REGISTERED

    def test_browse_says_whether_the_tracker_reached_the_peer(self, store: IndexStore) -> None:
        reached = store.join("10.0.0.1", 1, files("a"), identity="f" * 64, reachable=True)
        behind = store.join("10.0.0.1", 2, files("a"), identity="e" * 64, reachable=False)

        assert store.browse(reached.peer_id).reachable
        assert not store.browse(behind.peer_id).reachable

    # -- many callers at once --------------------------------------------------------------

    def test_many_threads_at_once_leave_a_consistent_store(self, store: IndexStore) -> None:
        common = [entry(f"common-{n}.mp4", 7) for n in range(5)]
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            rng = random.Random(worker)
            try:
                for round_ in range(15):
                    port = 8000 + worker * 3 + rng.randrange(3)
                    own = [entry(f"w{worker}-{round_}-{n}.mp4") for n in range(rng.randrange(6))]
                    joined = store.join("10.0.0.1", port, [*common[: rng.randrange(6)], *own])
                    store.search(query="mp4", limit=rng.randint(1, 50))
                    store.update(joined.peer_id, joined.token, [entry(f"u{worker}.bin")], ["x"])
                    if rng.random() < 0.3:
                        store.leave(joined.peer_id, joined.token)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        store.expire()
        assert store.audit() == []
        snapshot = store.snapshot()
        assert store.stats().peers == len(snapshot)
        assert store.stats().entries == sum(len(f) for f in snapshot.values())


class LimitsContract:
    """The limits, as one store with one shard enforces them exactly (a sharded store gives
    each shard its share of each limit: its own tests say what that means).
    """

    def test_registrations_per_address(self, make: Make) -> None:
        store = make(limits=dataclasses.replace(ROOMY, peers_per_address=2))
        store.join("10.0.0.1", 1, files("a.mp4"), ONE)
        store.join("10.0.0.1", 2, files("b.mp4"), ONE)
        before = store.snapshot()

        error = refused("ADDRESS_PEER_LIMIT", store.join, "10.0.0.1", 3, files("c.mp4"), ONE)
        assert "the limit is 2 (--max-peers-per-address)" in str(error)
        assert error.metadata == {"limit": "2", "flag": "--max-peers-per-address"}  # type: ignore[attr-defined]
        assert store.snapshot() == before
        store.join("10.0.0.1", 1, files("a2.mp4"), ONE)  # a re-join replaces, it adds none
        store.join("10.0.0.1", 3, files("c.mp4"), TWO)  # another address has its own budget
        store.join("10.0.0.1", 4, files("d.mp4"))  # callers in this process are not counted
        assert store.stats().peers == 4

    def test_files_per_address_count_every_registration_of_the_address(self, make: Make) -> None:
        store = make(limits=dataclasses.replace(ROOMY, files_per_address=5))
        first = store.join("10.0.0.1", 1, files("a", "b", "c"), ONE)
        before = store.snapshot()

        error = refused("ADDRESS_FILE_LIMIT", store.join, "10.0.0.1", 2, files("d", "e", "f"), ONE)
        assert "address 10.9.0.1 would have 6 files; the limit is 5" in str(error)
        error = refused(
            "ADDRESS_FILE_LIMIT", store.update, first.peer_id, first.token, files("d", "e", "f")
        )
        assert "address 10.9.0.1 would have 6 files; the limit is 5" in str(error)
        assert store.snapshot() == before
        assert [m.peer_id for m in store.search(name="a").matches] == [first.peer_id]
        assert store.search(name="d").matches == []

        store.join("10.0.0.1", 2, files("d", "e", "f"), TWO)
        store.update(first.peer_id, first.token, files("d", "e"), ["a"])  # 4 files now
        store.join("10.0.0.1", 1, files(*"vwxyz"), ONE)  # replaces its own 4 files: 5
        refused("ADDRESS_FILE_LIMIT", store.join, "10.0.0.1", 3, files("g"), ONE)

    def test_bytes_of_names_per_address_are_utf8_bytes(self, make: Make) -> None:
        store = make(limits=dataclasses.replace(ROOMY, name_bytes_per_address=20))
        joined = store.join("10.0.0.1", 1, files("ééééé"), ONE)  # 10 bytes, 5 characters

        refused("ADDRESS_NAME_BYTES_LIMIT", store.join, "10.0.0.1", 2, files("ååååå", "x"), ONE)
        refused(
            "ADDRESS_NAME_BYTES_LIMIT",
            store.update,
            joined.peer_id,
            joined.token,
            files("日本語xy"),
        )
        store.update(joined.peer_id, joined.token, files("ååååå"))  # exactly 20
        store.join("10.0.0.1", 2, files("ååååå", "x"), TWO)
        assert store.stats().entries == 4

    def test_the_whole_index_has_limits_whoever_calls(self, make: Make) -> None:
        store = make(limits=dataclasses.replace(ROOMY, peers=2, files=4, name_bytes=12))
        a = store.join("10.0.0.1", 1, files("aaa", "bbb"))
        store.join("10.0.0.1", 2, files("ccc"), ONE)
        before = store.snapshot()

        refused("INDEX_PEER_LIMIT", store.join, "10.0.0.1", 3, files("d"), TWO)
        refused("INDEX_FULL", store.update, a.peer_id, a.token, files("d", "e"))
        refused("INDEX_NAME_BYTES_LIMIT", store.update, a.peer_id, a.token, files("dddd"))
        error = refused("INDEX_FULL", store.join, "10.0.0.1", 1, files(*"vwxyz"))
        assert "the tracker would have 6 files; the limit is 4 (--max-files)" in str(error)
        assert store.snapshot() == before
        store.update(a.peer_id, a.token, files("ddd"))  # 4 files, 12 bytes: at the limits

    def test_leaving_gives_the_address_its_budget_back(self, make: Make) -> None:
        clock = Clock()
        store = make(10, clock=clock, limits=dataclasses.replace(ROOMY, files_per_address=2))
        left = store.join("10.0.0.1", 1, files("a", "b"), ONE)
        store.leave(left.peer_id, left.token)
        expired = store.join("10.0.0.1", 2, files("c", "d"), ONE)
        refused("ADDRESS_FILE_LIMIT", store.join, "10.0.0.1", 3, files("e"), ONE)
        clock.now += 30
        store.join("10.0.0.1", 3, files("e", "f"), ONE)
        assert store.search(name="c").matches == []
        assert [d.peer_id for d in store.expire()] == [expired.peer_id]
        assert store.stats().entries == 2

    def test_an_ipv6_network_is_one_address_to_every_per_address_limit(self, make: Make) -> None:
        limits = dataclasses.replace(
            ROOMY, peers_per_address=2, files_per_address=3, name_bytes_per_address=8
        )
        store = make(limits=limits)
        sources = [f"2001:db8:1:2::{n:x}" for n in range(1, 33)]  # 32 addresses, one /64
        store.join("10.0.0.1", 1, files("a"), sources[0])
        store.join("10.0.0.1", 2, files("b"), sources[1])
        error = refused("ADDRESS_PEER_LIMIT", store.join, "10.0.0.1", 3, files("c"), sources[2])
        assert "address 2001:db8:1:2::/64 would have 3 registrations" in str(error)
        for source in sources[3:]:
            refused("ADDRESS_PEER_LIMIT", store.join, "10.0.0.1", 3, files("c"), source)
        refused("ADDRESS_FILE_LIMIT", store.join, "10.0.0.1", 1, files("a", "x", "y"), SIX_B)
        refused("ADDRESS_NAME_BYTES_LIMIT", store.join, "10.0.0.1", 1, files("abcdefgh"), SIX_A)
        assert store.stats().peers == 2
        store.join("10.0.0.1", 3, files("c"), "2001:db8:1:3::1")  # another /64: its own budget
        # An IPv4-mapped address is the IPv4 address it maps.
        store.join("10.0.0.1", 4, files("d"), "::ffff:10.9.0.1")
        store.join("10.0.0.1", 5, files("e"), ONE)
        refused("ADDRESS_PEER_LIMIT", store.join, "10.0.0.1", 6, files("f"), ONE)
        assert store.stats().peers == 5

    def test_the_ipv6_prefix_that_is_one_address_is_a_setting(self, make: Make) -> None:
        store = make(
            limits=dataclasses.replace(ROOMY, peers_per_address=1),
            address_key=AddressKey(ipv6_prefix=128),
        )
        store.join("10.0.0.1", 1, files("a"), SIX_A)
        store.join("10.0.0.1", 2, files("b"), SIX_B)  # each address alone, as asked
        refused("ADDRESS_PEER_LIMIT", store.join, "10.0.0.1", 3, files("c"), SIX_A)

    def test_the_index_counts_a_shared_name_once(self, make: Make) -> None:
        store = make(limits=dataclasses.replace(ROOMY, name_bytes=6))
        store.join("10.0.0.1", 1, files("abc"), ONE)
        store.join("10.0.0.1", 2, files("abc"), TWO)  # held twice, stored once: 3 bytes

        refused("INDEX_NAME_BYTES_LIMIT", store.join, "10.0.0.1", 3, files("abcd"))
        store.join("10.0.0.1", 3, files("xyz", "abc"))


# -- the stateful property test: a backend against the memory model ----------------------

MODEL_LIMITS = Limits(
    peers_per_address=3,
    files_per_address=8,
    name_bytes_per_address=60,
    peers=5,
    files=14,
    name_bytes=100,
)
NAMES = [
    "a.mp4",
    "A.mp4",
    "ab",
    "b.txt",
    "été",
    "İx",
    "abc abc",
    "xyz.mp4",
    "Ab.MP4",
    "a/b.mp4",
    "a/é/x",
    "ab/c",
]
FOLDERS = ["", "a", "a/", "a/é", "ab", "b"]
CONTENTS = ["one", "two", "three"]
WORDS = ["a", "ab", "mp4", "b", "é", "i̇x", "abc", "xyz", "zz"]


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    """What a call did, comparable across backends: its result, or its error's kind, reason
    and message.
    """
    try:
        return "ok", call()
    except Exception as error:
        return "error", (type(error).__name__, getattr(error, "reason", ""), str(error))


class ModelComparison:
    """Builds the state machine that runs every call on a backend and on the memory model."""

    @staticmethod
    def machine(make: Make, limits: Limits, *, names_once: bool) -> type:
        from hypothesis import strategies as st
        from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
        from napshare.tracker.index import TrackerIndex

        ports = st.integers(1, 6)
        names = st.lists(st.sampled_from(NAMES), max_size=5, unique=True)
        sources = st.sampled_from([None, ONE, TWO, SIX_A, SIX_B])
        identities = st.sampled_from(["", "a" * 64, "b" * 64])
        query = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)

        class Machine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.clock = Clock()
                options = {"clock": self.clock, "max_files": 6, "limits": limits}
                self.model = TrackerIndex(10, **options)  # type: ignore[arg-type]
                self.store = make(10, **options)
                self.tokens: dict[int, tuple[str, str]] = {}  # port: (model's, store's)

            def both(self, call: Callable[[IndexStore], object]) -> tuple[str, object]:
                expected = _outcome(lambda: call(self.model))
                found = _outcome(lambda: call(self.store))
                if expected[0] == "ok":
                    assert found[0] == "ok", found
                else:
                    assert found == expected
                return found

            @rule(
                port=ports, files_=names, source=sources, identity=identities, reach=st.booleans()
            )
            def join(
                self, port: int, files_: list[str], source: str | None, identity: str, reach: bool
            ) -> None:
                # Names of one length hold the same bytes: a search by content finds several.
                announced = [
                    same_bytes(n, CONTENTS[len(n) % len(CONTENTS)], len(n), root=len(n) % 2 == 0)
                    for n in files_
                ]
                results = []

                def call(store: IndexStore) -> object:
                    registration = store.join(
                        "10.0.0.1",
                        port,
                        announced,
                        source,
                        identity=identity,
                        certificate=identity.encode()[:3],
                        reachable=reach,
                    )
                    results.append(registration.token)
                    return registration.peer_id

                if self.both(call)[0] == "ok":
                    self.tokens[port] = (results[0], results[1])

            @rule(port=ports, added=names, removed=names, wrong=st.booleans())
            def update(self, port: int, added: list[str], removed: list[str], wrong: bool) -> None:
                model_token, store_token = self.tokens.get(port, ("x" * 32, "x" * 32))
                if wrong:
                    model_token = store_token = "y" * 32
                added_files = [entry(n, 7) for n in added]
                self.both(
                    lambda s: s.update(
                        f"10.0.0.1:{port}",
                        model_token if s is self.model else store_token,
                        added_files,
                        removed,
                    )
                )

            @rule(port=ports)
            def heartbeat(self, port: int) -> None:
                model_token, store_token = self.tokens.get(port, ("x" * 32, "x" * 32))
                self.both(
                    lambda s: s.heartbeat(
                        f"10.0.0.1:{port}", model_token if s is self.model else store_token
                    )
                )

            @rule(port=ports)
            def leave(self, port: int) -> None:
                model_token, store_token = self.tokens.get(port, ("x" * 32, "x" * 32))
                self.both(
                    lambda s: s.leave(
                        f"10.0.0.1:{port}", model_token if s is self.model else store_token
                    )
                )

            @rule(seconds=st.sampled_from([0.5, 5.0, 10.0, 15.0]))
            def tick(self, seconds: float) -> None:
                self.clock.now += seconds

            @rule()
            def expire(self) -> None:
                expected = sorted((d.peer_id, sorted(d.names)) for d in self.model.expire())
                found = sorted((d.peer_id, sorted(d.names)) for d in self.store.expire())
                assert found == expected

            @rule(name=st.sampled_from(NAMES), limit=st.integers(1, 4))
            def search_name(self, name: str, limit: int) -> None:
                self.compare_search(limit, name=name)

            @rule(words=query, limit=st.integers(1, 4))
            def search_words(self, words: list[str], limit: int) -> None:
                self.compare_search(limit, query=" ".join(words))

            @rule(content=st.sampled_from(CONTENTS), root=st.booleans(), limit=st.integers(1, 4))
            def search_content(self, content: str, root: bool, limit: int) -> None:
                if root:
                    self.compare_search(limit, pieces_root=digest("root " + content))
                else:
                    self.compare_search(limit, sha256=digest(content))

            @rule(port=ports, folder=st.sampled_from(FOLDERS), limit=st.integers(1, 3))
            def browse(self, port: int, folder: str, limit: int) -> None:
                def listing(store: IndexStore) -> object:
                    pages, token = [], ""
                    while True:
                        page = store.browse(
                            f"10.0.0.1:{port}", folder, limit=limit, page_token=token
                        )
                        pages.append((page.files, page.certificate, page.reachable))
                        token = page.next_page_token
                        if not token:
                            return pages

                assert self.both(listing) == _outcome(lambda: listing(self.model))

            def compare_search(self, limit: int, **search: str) -> None:
                expected = [(keys(p), p.gathering) for p in every_page(self.model, limit, **search)]
                found = [(keys(p), p.gathering) for p in every_page(self.store, limit, **search)]
                assert found == expected

            @invariant()
            def same_index(self) -> None:
                assert self.store.snapshot() == self.model.snapshot()
                found, expected = self.store.stats(), self.model.stats()
                assert (found.peers, found.entries) == (expected.peers, expected.entries)
                if names_once:
                    assert found.names == expected.names

            def teardown(self) -> None:
                self.store.expire()
                assert self.store.audit() == []

        return Machine


class ModelContract:
    """Mixed into a backend's test class: its store behaves as the memory model does."""

    model_limits = MODEL_LIMITS  # small, so that calls pass them; ROOMY for a sharded store
    names_once = True  # stats() counts each distinct name once (a sharded store: per shard)
    model_examples = 40

    def test_behaves_as_the_memory_model(self, make: Make) -> None:
        from hypothesis import HealthCheck, settings
        from hypothesis.stateful import run_state_machine_as_test

        machine = ModelComparison.machine(make, self.model_limits, names_once=self.names_once)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.model_examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
