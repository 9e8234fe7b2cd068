"""Upload slots per address count an IPv6 /64 as one address."""

import pytest
from napshare.common.addresskey import AddressKey
from napshare.peer.serving.errors import TooManyUploadsError
from napshare.peer.serving.slots import Fairness, UploadSlots


def test_downloaders_of_one_ipv6_network_share_its_slots() -> None:
    slots = UploadSlots(8, fairness=Fairness(per_address=2, min_rate=0, window=30, grace=10))
    held = [slots.acquire("2001:db8:3:4::1"), slots.acquire("2001:db8:3:4:ffff::2")]
    with pytest.raises(TooManyUploadsError, match=r"2001:db8:3:4::/64 already has 2"):
        slots.acquire("2001:db8:3:4::3")
    held.append(slots.acquire("2001:db8:3:5::1"))  # another network
    held.append(slots.acquire("198.51.100.1"))
    held.append(slots.acquire("198.51.100.2"))  # IPv4 addresses count each alone
    for slot in held:
        slot.release()
    assert slots.in_use == 0


def test_the_prefix_is_a_setting() -> None:
    fairness = Fairness(
        per_address=1, min_rate=0, window=30, grace=10, address_key=AddressKey(ipv6_prefix=128)
    )
    slots = UploadSlots(8, fairness=fairness)
    slots.acquire("2001:db8:3:4::1")
    slots.acquire("2001:db8:3:4::2")
    with pytest.raises(TooManyUploadsError):
        slots.acquire("2001:db8:3:4::1")
