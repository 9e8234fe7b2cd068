"""The Connect policy: who may ask the tracker to reach a peer, how often, and what they get.

No gRPC here: the servicer turns these answers and errors into messages and statuses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from napshare.common import reasons
from napshare.common.address import InvalidAddressError, format_address, parse_ip_address
from napshare.common.protocol import MAX_LOCAL_ADDRESSES
from napshare.tracker.errors import InvalidRequestError


def check_local_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """A Join's `local_addresses` in normal form, or InvalidRequestError (ADDRESS_INVALID)
    naming the first bad one: each an IP literal and a port, none unspecified or multicast,
    at most MAX_LOCAL_ADDRESSES.
    """
    if len(addresses) > MAX_LOCAL_ADDRESSES:
        raise InvalidRequestError(
            f"{len(addresses)} local addresses; the limit is {MAX_LOCAL_ADDRESSES}",
            reasons.ADDRESS_INVALID,
            {"field": "local_addresses", "limit": str(MAX_LOCAL_ADDRESSES)},
        )
    checked: list[str] = []
    for position, text in enumerate(addresses):
        where = f"local_addresses[{position}]"
        try:
            host, port = parse_ip_address(text)
        except InvalidAddressError as error:
            raise InvalidRequestError(
                f"{where}: {error}", reasons.ADDRESS_INVALID, {"field": where}
            ) from None
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified or ip.is_multicast:
            raise InvalidRequestError(
                f"{where}: {host} is not an address a peer can be dialled at",
                reasons.ADDRESS_INVALID,
                {"field": where},
            )
        address = format_address(host, port)
        if address not in checked:
            checked.append(address)
    return tuple(checked)
