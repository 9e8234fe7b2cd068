"""What counts as one address for a per-address limit: an IPv4 address, or an IPv6 /64.

Whoever has one IPv6 address nearly always has its whole /64 (a network's smallest prefix;
an ISP hands a home a /64 or a /56), so a client may take a fresh address for every call: a
limit per IPv6 address bounds nothing. Every per-address limit of napshare (the tracker's
registrations, files and names, its address checks and Connect rate, the relay's waiting
connections, a peer's upload slots, the connections each server accepts) counts by the key
this module gives: IPv4 per address, IPv6 per prefix (`--ipv6-prefix`, default 64). An
IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) counts as the IPv4 address it maps.
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass, replace

from napshare.common.address import canonical_ip
from napshare.common.cliargs import int_in_range
from napshare.common.console import tr

DEFAULT_IPV6_PREFIX = 64  # a network's smallest prefix: what one home or host nearly always has
MIN_IPV6_PREFIX = 32  # an ISP's allocation: coarser would lump whole providers together
IPV4_BITS = 32
IPV6_BITS = 128


@dataclass(frozen=True, slots=True)
class AddressKey:
    """Maps an IP address to the key its per-address limits count under: IPv4 addresses per
    `ipv4_prefix` bits (32: each alone), IPv6 per `ipv6_prefix` bits. Anything that is not
    an IP literal (a unix socket's peer, say) is its own key.
    """

    ipv6_prefix: int = DEFAULT_IPV6_PREFIX
    ipv4_prefix: int = IPV4_BITS

    def __post_init__(self) -> None:
        if not MIN_IPV6_PREFIX <= self.ipv6_prefix <= IPV6_BITS:
            raise ValueError(
                f"the IPv6 prefix must be {MIN_IPV6_PREFIX} to {IPV6_BITS} bits, "
                f"not {self.ipv6_prefix}"
            )
        if not 8 <= self.ipv4_prefix <= IPV4_BITS:
            raise ValueError(f"the IPv4 prefix must be 8 to 32 bits, not {self.ipv4_prefix}")

    def __call__(self, address: str) -> str:
        """The key of `address` (an IP literal): `192.0.2.7`, `192.0.2.0/24`,
        `2001:db8:1:2::/64`.
        """
        canonical = canonical_ip(address)
        if canonical is None:
            return address
        ip = ipaddress.ip_address(canonical)
        prefix = self.ipv4_prefix if ip.version == 4 else self.ipv6_prefix
        if prefix == ip.max_prefixlen:
            return canonical
        return str(ipaddress.ip_network(f"{canonical}/{prefix}", strict=False))

    def with_ipv4_prefix(self, bits: int) -> AddressKey:
        """The same rule, with IPv4 addresses counted per `bits`-bit prefix."""
        return replace(self, ipv4_prefix=bits)


def add_ipv6_prefix_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The --ipv6-prefix flag, which sets what one IPv6 address is to per-address limits."""
    parser.add_argument(
        "--ipv6-prefix",
        type=int_in_range(MIN_IPV6_PREFIX, IPV6_BITS),
        default=DEFAULT_IPV6_PREFIX,
        metavar="BITS",
        help=tr(
            "IPv6 addresses that share their first BITS bits count as one address for every "
            "per-address limit (IPv4 addresses count each alone; default %(default)s: a "
            "network's smallest prefix, which whoever has one address nearly always has)"
        ),
    )


def address_key_from_args(args: argparse.Namespace) -> AddressKey:
    """The AddressKey that --ipv6-prefix set."""
    return AddressKey(ipv6_prefix=args.ipv6_prefix)
