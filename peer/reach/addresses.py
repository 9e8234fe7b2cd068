"""This host's addresses on its own network, which a Join announces so that peers behind the
same NAT (who share its public address) dial it there directly.

The address is the one the kernel would send from towards the tracker: the source address of
a UDP socket "connected" to it (no packet leaves), or the address the server is bound to when
it is bound to one.
"""

import ipaddress
import logging
import socket

from napshare.common.address import format_address, parse_address

logger = logging.getLogger(__name__)


def local_addresses(tracker: str, port: int, bound: str) -> list[str]:
    """`ip:port` where this peer's server on `port` answers on its own network: the `bound`
    address if it is a specific one, else this host's address on the way to `tracker`
    (`host:port`); none when neither is known.
    """
    try:
        ip = ipaddress.ip_address(bound.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None and not ip.is_unspecified:
        return [format_address(str(ip), port)]
    source = source_towards(tracker)
    if source is None or (ip is not None and ip.version != source.version):
        return []
    return [format_address(str(source), port)]


def source_towards(tracker: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address this host sends from towards `tracker`, or None if it has no route."""
    try:
        host, port = parse_address(tracker)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, ValueError) as error:
        logger.debug("no local address towards %s: %s", tracker, error)
        return None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(address)  # UDP: chooses a route and a source, sends nothing
                source = probe.getsockname()[0]
        except OSError:
            continue
        found = ipaddress.ip_address(source.partition("%")[0])
        if not found.is_unspecified:
            return found
    return None
