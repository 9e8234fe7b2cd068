"""The distinct file names the tracker knows, which peers hold each, and their sizes and digests.

Memory matters here: a tracker may index millions of (peer, file) pairs. Each distinct
name is stored once and gets a small integer id. A name with a single holder (the usual
case) keeps that holder's size, digest and pieces root in one shared bytearray, 72 bytes per
id; a name with several holders keeps a dict from peer id to a 72-byte record, shared between
holders whose size, digest and root agree. Holders are peer ids, the same string objects the
peers use. A keyword index finds names by their words, a content index by their holders'
digests.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from itertools import repeat

from napshare.tracker.checks import CONTENT_SHA256
from napshare.tracker.contents import ContentIndex
from napshare.tracker.keywords import KeywordIndex
from napshare.tracker.nametable import NameTable

_RECORD = struct.Struct("<Q32s32s")  # size, sha256, pieces root (zeros: none)
RECORD_SIZE = _RECORD.size
_NO_ROOT = bytes(32)  # a root is a SHA-256: never all zeros in practice
_SHA256 = slice(8, 40)  # where a record holds the sha256
_ROOT = slice(40, 72)  # and the pieces root

_Owner = str | dict[str, bytes] | None  # one holder's peer id, several holders, or a free id


def pack_record(size: int, digest: bytes, pieces_root: bytes = b"") -> bytes:
    """A file's size, raw SHA-256 digest and raw pieces root (b"": none) as one record."""
    return _RECORD.pack(size, digest, pieces_root)


def unpack_record(record: bytes) -> tuple[int, bytes, bytes]:
    """The (size, raw digest, raw pieces root or b"") of a record."""
    size, digest, pieces_root = _RECORD.unpack(record)
    return size, digest, b"" if pieces_root == _NO_ROOT else pieces_root


class Catalog:
    """Distinct names with ids, their holders and records, and a keyword index over them."""

    def __init__(self) -> None:
        self._names: list[str | None] = []
        self._ids = NameTable(self._names)
        self._owners: list[_Owner] = []
        self._records = bytearray()
        self.keywords = KeywordIndex(self._names)
        self._free = self.keywords.clean  # ids reused only once out of every keyword bucket
        self.contents = ContentIndex(self._digests_of)
        self.name_bytes = 0  # UTF-8 bytes of the distinct names

    def __len__(self) -> int:
        """How many distinct names have at least one holder."""
        return len(self._ids)

    def id_of(self, name: str) -> int | None:
        """The id of `name`, or None if nobody holds it."""
        return self._ids.get(name)

    def name_of(self, name_id: int) -> str:
        """The name that has id `name_id`."""
        name = self._names[name_id]
        assert name is not None, f"name id {name_id} is free"
        return name

    def ids(self) -> list[int]:
        """The id of every name someone holds: for audits."""
        return [name_id for name_id, name in enumerate(self._names) if name is not None]

    def new_bytes(self, names: Iterable[str]) -> int:
        """The UTF-8 bytes of those of `names` that nobody holds yet."""
        get_id = self._ids.get
        return sum(len(name.encode()) for name in names if get_id(name) is None)

    def holds(self, holder: str, name: str) -> bool:
        """Whether peer `holder` has `name`."""
        name_id = self._ids.get(name)
        if name_id is None:
            return False
        owner = self._owners[name_id]
        return owner == holder or (isinstance(owner, dict) and holder in owner)

    def put_all(self, holder: str, names: list[str], records: list[bytes]) -> list[int]:
        """Record that peer `holder` has each name with its record; return the ids new to it."""
        get_id, owners = self._ids.get, self._owners
        new: list[int] = []
        for name, record in zip(names, records, strict=True):
            name_id = get_id(name)
            if name_id is None:
                new.append(self._new_id(name, holder, record))
                continue
            owner = owners[name_id]
            if owner == holder:
                self._replace_record(name_id, self._get_record(name_id), record)
                self._set_record(name_id, record)
                continue
            if not isinstance(owner, dict):
                assert owner is not None, f"name id {name_id} is free"
                owner = {owner: self._get_record(name_id)}
                owners[name_id] = owner
            old = owner.get(holder)
            if old is None:
                new.append(name_id)
                self._index(name_id, record)
            else:
                self._replace_record(name_id, old, record)
            # Holders that agree on size and digest share one record object.
            shared = next(iter(owner.values()))
            owner[holder] = shared if shared == record else record
        return new

    def drop(self, holder: str, name_id: int) -> None:
        """Forget that peer `holder` has the name `name_id`; a name nobody holds is removed."""
        owner = self._owners[name_id]
        if isinstance(owner, dict):
            self._unindex(owner.pop(holder))
            if len(owner) > 1:
                return
            (last, record) = owner.popitem()
            self._owners[name_id] = last
            self._set_record(name_id, record)
            return
        assert owner == holder, "dropping a name the holder does not have"
        record = self._get_record(name_id)
        name = self.name_of(name_id)
        self.name_bytes -= len(name.encode())
        self._ids.remove(name)
        self._names[name_id] = None
        self._owners[name_id] = None
        self.keywords.remove(name_id, name)
        self._unindex(record)

    def holdings(self, name_ids: Iterable[int]) -> list[tuple[str, str, int]]:
        """Every (holder, name, name id) of the given names."""
        names, owners = self._names, self._owners
        found: list[tuple[str, str, int]] = []
        for name_id in name_ids:
            owner, name = owners[name_id], names[name_id]
            assert name is not None, f"name id {name_id} is free"
            if isinstance(owner, dict):
                found.extend(zip(owner, repeat(name), repeat(name_id)))
            elif owner is not None:
                found.append((owner, name, name_id))
        return found

    def record(self, holder: str, name_id: int) -> bytes:
        """The record peer `holder` announced for the name `name_id`."""
        owner = self._owners[name_id]
        if isinstance(owner, dict):
            return owner[holder]
        assert owner == holder, "asking for a name the holder does not have"
        return self._get_record(name_id)

    def matching(self, words: list[str]) -> Iterable[int]:
        """Ids of the names that contain every (lowercased) word."""
        return self.keywords.matches(words)

    def digests(self, holder: str, name_id: int) -> list[bytes]:
        """The sha256 and, if any, the pieces root that `holder` announced for `name_id`."""
        record = self.record(holder, name_id)
        root = record[_ROOT]
        return [record[_SHA256]] if root == _NO_ROOT else [record[_SHA256], root]

    def with_content(self, field: str, digest: bytes) -> list[tuple[str, str, int]]:
        """Every (holder, name, name id) whose record has `digest` as its sha256 (`field`
        CONTENT_SHA256) or its pieces root (CONTENT_ROOT), whatever the name.
        """
        where = _SHA256 if field == CONTENT_SHA256 else _ROOT
        names, owners = self._names, self._owners
        found: list[tuple[str, str, int]] = []
        for name_id in self.contents.candidates(digest):
            owner, name = owners[name_id], names[name_id]
            if name is None:
                continue  # a stale id, freed
            if isinstance(owner, dict):
                found.extend(
                    (holder, name, name_id)
                    for holder, record in owner.items()
                    if record[where] == digest
                )
            elif owner is not None and self._get_record(name_id)[where] == digest:
                found.append((owner, name, name_id))
        return found

    def _new_id(self, name: str, holder: str, record: bytes) -> int:
        if self._free:
            name_id = self._free.pop()
            self._names[name_id] = name
        else:
            name_id = len(self._names)
            self._names.append(name)
            self._owners.append(None)
            self._records.extend(bytes(RECORD_SIZE))
        self._ids.add(name, name_id)
        self.name_bytes += len(name.encode())
        self.keywords.add(name_id, name)
        self._owners[name_id] = holder
        self._set_record(name_id, record)
        self._index(name_id, record)
        return name_id

    def _index(self, name_id: int, record: bytes) -> None:
        """Index a holder's `record` of `name_id` by its digests."""
        contents = self.contents
        contents.add(name_id, record[_SHA256])
        root = record[_ROOT]
        if root != _NO_ROOT:
            contents.add(name_id, root)

    def _unindex(self, record: bytes) -> None:
        """One holder dropped `record`: its digests' buckets may hold a stale id."""
        contents = self.contents
        contents.forget(record[_SHA256])
        root = record[_ROOT]
        if root != _NO_ROOT:
            contents.forget(root)

    def _replace_record(self, name_id: int, old: bytes, record: bytes) -> None:
        """A holder of `name_id` announced `record` where it had `old`."""
        if old != record:
            self._unindex(old)
            self._index(name_id, record)

    def _digests_of(self, name_id: int) -> Iterable[bytes]:
        """The sha256 and pieces roots that the holders of `name_id` announce (none: free)."""
        owner = self._owners[name_id] if name_id < len(self._owners) else None
        if owner is None:
            return ()
        records = set(owner.values()) if isinstance(owner, dict) else {self._get_record(name_id)}
        digests = {record[_SHA256] for record in records}
        digests.update(record[_ROOT] for record in records if record[_ROOT] != _NO_ROOT)
        return digests

    def _get_record(self, name_id: int) -> bytes:
        start = name_id * RECORD_SIZE
        return bytes(self._records[start : start + RECORD_SIZE])

    def _set_record(self, name_id: int, record: bytes) -> None:
        start = name_id * RECORD_SIZE
        self._records[start : start + RECORD_SIZE] = record
