"""The queue of UploadSlots: who gets a freed slot, and when a place is refused or given up."""

import pytest
from napshare.peer.serving.errors import TooManyUploadsError, UploadsBusyError
from napshare.peer.serving.slots import (
    Fairness,
    LeftQueueError,
    QueueLimits,
    QueuePlace,
    QueueReport,
    UploadSlot,
    UploadSlots,
)

ROOMY = QueueLimits(most=8, per_address=8)


def place(ticket: UploadSlot | QueuePlace) -> QueuePlace:
    assert isinstance(ticket, QueuePlace)
    return ticket


def test_a_freed_slot_goes_to_the_first_waiting_never_to_a_newcomer() -> None:
    slots = UploadSlots(1, queue=ROOMY)
    running = slots.acquire_or_wait("198.51.100.1")
    assert isinstance(running, UploadSlot)
    first = place(slots.acquire_or_wait("198.51.100.2"))
    second = place(slots.acquire_or_wait("198.51.100.3"))

    running.release()

    assert first.slot is not None
    assert second.slot is None
    with pytest.raises(UploadsBusyError):
        slots.acquire("198.51.100.4")  # one that does not wait is refused, as before
    assert place(slots.acquire_or_wait("198.51.100.4")).update(0) is not None  # it waits
    first.slot.release()
    assert second.slot is not None


def test_a_place_whose_address_holds_its_slots_lets_the_next_go_first() -> None:
    fairness = Fairness(per_address=1, min_rate=0, window=30, grace=10)
    slots = UploadSlots(2, fairness=fairness, queue=ROOMY)
    mine = slots.acquire("198.51.100.1")
    other = slots.acquire("198.51.100.2")
    with pytest.raises(TooManyUploadsError):
        slots.acquire_or_wait("198.51.100.1")  # an address at its limit is refused, not queued
    waiting = place(slots.acquire_or_wait("198.51.100.3"))

    other.release()

    assert waiting.slot is not None
    mine.release()
    assert slots.in_use == 1


def test_the_queue_has_room_for_so_many_in_all_and_per_address() -> None:
    slots = UploadSlots(1, queue=QueueLimits(most=2, per_address=1))
    slots.acquire("198.51.100.1")
    place(slots.acquire_or_wait("198.51.100.2"))
    with pytest.raises(TooManyUploadsError):
        slots.acquire_or_wait("198.51.100.2")
    place(slots.acquire_or_wait("198.51.100.3"))
    with pytest.raises(UploadsBusyError, match="2 more wait"):
        slots.acquire_or_wait("198.51.100.4")


def test_no_queue_refuses_at_once() -> None:
    slots = UploadSlots(1)
    slots.acquire("198.51.100.1")
    with pytest.raises(UploadsBusyError):
        slots.acquire_or_wait("198.51.100.2")


def test_leaving_gives_up_the_place_or_the_slot_just_given() -> None:
    slots = UploadSlots(1, queue=ROOMY)
    running = slots.acquire("198.51.100.1")
    first = place(slots.acquire_or_wait("198.51.100.2"))
    second = place(slots.acquire_or_wait("198.51.100.3"))
    assert second.update(0) == QueueReport(2, 2, None)  # nothing ran yet: no estimate

    first.leave()
    report = second.update(0)
    assert report is not None
    assert (report.position, report.waiting) == (1, 1)
    with pytest.raises(LeftQueueError):
        first.update(0)
    running.release()
    assert second.slot is not None
    second.leave()  # gone the moment its turn came: the slot is free again
    assert slots.in_use == 0
    assert slots.waiting == 0
