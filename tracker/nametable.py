"""A map from file name to id that costs 4 to 8 bytes a name: open addressing over an int array.

A dict from str to int would cost about 60 bytes a name (its table plus one int object per
id); with millions of names that is most of the tracker's memory. The table stores only
ids; the names themselves live in the catalog's id -> name list, which it reads.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

_EMPTY = -1
_DELETED = -2
_MIN_SLOTS = 8
_PERTURB_SHIFT = 5


class NameTable:
    """name -> id for the names in `names` (indexed by id), using only an int array."""

    def __init__(self, names: Sequence[str | None]) -> None:
        self._names = names
        self._slots: array[int] = array("i", [_EMPTY]) * _MIN_SLOTS
        self._live = 0
        self._used = 0  # live + deleted slots

    def __len__(self) -> int:
        return self._live

    def get(self, name: str) -> int | None:
        """The id of `name`, or None."""
        slots = self._slots
        found = slots[hash(name) & (len(slots) - 1)]
        if found == _EMPTY:  # the usual answers come from the first slot
            return None
        if found >= 0 and self._names[found] == name:
            return found
        found = slots[self._find(name)]
        return None if found < 0 else found

    def add(self, name: str, name_id: int) -> None:
        """Map `name` (not yet in the table, already at `names[name_id]`) to `name_id`."""
        if (self._used + 1) * 3 > len(self._slots) * 2:
            self._resize()
        slot = self._find(name)
        assert self._slots[slot] == _EMPTY, f"{name!r} is already in the table"
        self._slots[slot] = name_id
        self._live += 1
        self._used += 1

    def remove(self, name: str) -> None:
        """Forget `name`, which must be in the table (and still at its id in `names`)."""
        slot = self._find(name)
        assert self._slots[slot] >= 0, f"{name!r} is not in the table"
        self._slots[slot] = _DELETED
        self._live -= 1

    def _find(self, name: str) -> int:
        """The slot that holds `name`, else the empty slot where its search ended."""
        slots, names = self._slots, self._names
        mask = len(slots) - 1
        perturb = hash(name) & 0xFFFF_FFFF_FFFF_FFFF
        slot = perturb & mask
        while True:
            found = slots[slot]
            if found == _EMPTY or (found >= 0 and names[found] == name):
                return slot
            perturb >>= _PERTURB_SHIFT
            slot = (slot * 5 + perturb + 1) & mask

    def _resize(self) -> None:
        """Rebuild without deleted slots, with room for twice the live names."""
        size = _MIN_SLOTS
        while size * 2 < (self._live + 1) * 4:
            size *= 2
        old = self._slots
        self._slots = array("i", [_EMPTY]) * size
        self._used = self._live
        for name_id in old:
            if name_id >= 0:
                name = self._names[name_id]
                assert name is not None
                self._slots[self._find(name)] = name_id
