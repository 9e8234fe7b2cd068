"""Peer addresses: `host:port` and `[v6]:port`, checked and formatted one way."""

import ipaddress
import re
from urllib.parse import unquote

from napshare.common.console import N_, LocalizedError

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class InvalidAddressError(LocalizedError, ValueError):
    """A host, port or `host:port` string that is not well formed."""


def check_host(host: str) -> str:
    """Return `host` (an IP literal or DNS name) normalised, else raise InvalidAddressError.

    An IP literal comes out in its canonical form (an IPv4-mapped IPv6 address as the IPv4
    address), a name in lower case. Numbers that only some resolvers read as IPv4 addresses
    (`127.1`, `0177.0.0.1`, `2130706433`) are neither: a DNS name's last label is never all
    digits, and two spellings of one address would count as two peers.
    """
    canonical = canonical_ip(host)
    if canonical is not None:
        return canonical
    name = host.rstrip(".")
    if 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        if name.rpartition(".")[2].isdigit():
            raise InvalidAddressError(
                N_(
                    "host {host!r} is not an IP address in standard form "
                    "(such as 192.0.2.1 or 2001:db8::1) nor a DNS name"
                ),
                host=host[:80],
            )
        return name.lower()
    raise InvalidAddressError(N_("host {host!r} is not an IP address or DNS name"), host=host[:80])


def check_ip_host(host: str) -> str:
    """`host` as canonical IP text (check_host), or InvalidAddressError when it is a name:
    for addresses that count as one peer, which two names of one machine must not split.
    """
    checked = check_host(host)
    if canonical_ip(checked) is None:
        raise InvalidAddressError(
            N_(
                "host {host!r} is a name, not an IP address: give the IP address other peers "
                "dial (resolve the name first)"
            ),
            host=host[:80],
        )
    return checked


def canonical_ip(text: str) -> str | None:
    """`text` (an IP literal, brackets allowed) in its one canonical form, an IPv4-mapped IPv6
    address as the IPv4 address it maps; None when it is no IP literal in standard notation.
    """
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def check_port(port: int) -> int:
    """Return `port` if it is 1..65535, else raise InvalidAddressError."""
    if not 1 <= port <= 65535:
        raise InvalidAddressError(N_("port {port} is outside 1..65535"), port=port)
    return port


def format_address(host: str, port: int) -> str:
    """`host:port`, with IPv6 literals in brackets: the peer id and gRPC target form."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_address(text: str) -> tuple[str, int]:
    """Split `host:port` or `[v6]:port` into a checked (host, port)."""
    shown = repr(text[:80])
    scheme = _SCHEME.match(text.strip())
    if scheme:
        raise InvalidAddressError(
            N_("address {address} has a scheme: give host:port without {scheme}"),
            address=shown,
            scheme=scheme.group(0),
        )
    host, sep, port_text = text.strip().rpartition(":")
    if ":" in host and not host.startswith("[") and _looks_like_ipv6(host, text.strip()):
        raise InvalidAddressError(
            N_("IPv6 address {address} must look like [addr]:port"), address=shown
        )
    if not sep or not host or not port_text.isdigit() or (":" in host and host[0] != "["):
        raise InvalidAddressError(N_("address {address} must look like host:port"), address=shown)
    return check_host(host), check_port(int(port_text))


def parse_ip_address(text: str) -> tuple[str, int]:
    """Split `ip:port` or `[v6]:port` into a checked (ip, port): like parse_address, but the
    host must be an IP literal, for addresses that are dialled without a name lookup.
    """
    host, port = parse_address(text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidAddressError(
            N_("address {address} must be an IP address and a port"), address=repr(text[:80])
        ) from None
    return host, port


def _looks_like_ipv6(*candidates: str) -> bool:
    """True if any candidate is an IPv6 literal: `::1:80` is one with its port run in."""
    for candidate in candidates:
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return True
    return False


def normal_address(text: str) -> str:
    """`text` (`host:port` or `[v6]:port`) in the one form peer ids have, or InvalidAddressError."""
    return format_address(*parse_address(text))


def address_list(text: str) -> list[str]:
    """The addresses in `text`, `host:port` separated by commas, in normal form and each once
    (a tracker's replicas); InvalidAddressError for a malformed one.
    """
    addresses: list[str] = []
    for part in text.split(","):
        address = normal_address(part)
        if address not in addresses:
            addresses.append(address)
    return addresses


def caller_address(peer: str) -> str | None:
    """`ip:port` (`[v6]:port`) of gRPC's `context.peer()` (`ipv4:1.2.3.4:5678`,
    `ipv6:%5B::1%5D:5678`), else None (a unix socket, say)."""
    kind, _, address = unquote(peer).partition(":")
    return address if kind in ("ipv4", "ipv6") else None


def caller_ip(peer: str) -> str | None:
    """The IP alone of gRPC's `context.peer()`, else None."""
    address = caller_address(peer)
    if address is None:
        return None
    return address.rpartition(":")[0].removeprefix("[").removesuffix("]") or None


NAMES_BLOCK = "names"  # the block every DNS name counts in: names cost nothing to make


def address_block(host: str) -> str:
    """The block of addresses one party most likely holds whole, which `host` (an IP literal,
    in brackets or not, or a DNS name) is in: an IPv4 address's /24, an IPv6 address's /64
    (an IPv4-mapped one's /24, as IPv4). Every DNS name is in one block, NAMES_BLOCK: anyone
    can make as many names as they like.
    """
    try:
        ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return NAMES_BLOCK
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return f"{ipaddress.IPv4Address(int(ip) >> 8 << 8)}/24"
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"
