"""A socket filter (classic BPF) that drops the packets of some source networks: attached to a
listening TCP socket, it keeps their new connections from ever being accepted.

The kernel runs a listening socket's filter on each SYN (and handshake-ending ACK) it gets,
before any connection exists, at no cost to anyone else; a connection accepted meanwhile keeps
the filter of its moment, and its own peer never matches it. Linux only (SO_ATTACH_FILTER,
and SKF_NET_OFF to read the IP header); any process may filter its own sockets.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_SKF_NET_OFF = -0x100000  # loads relative to the IP header
_LD_W_ABS, _LD_B_ABS = 0x20, 0x30
_LD_MEM, _ST = 0x60, 0x02
_ALU_RSH_K, _ALU_AND_K = 0x74, 0x54
_JA, _JEQ_K = 0x05, 0x15
_RET_K = 0x06
_DROP, _KEEP = 0, 0xFFFFFFFF
MAX_INSTRUCTIONS = 4096  # the kernel's bound on a classic program
_HEAD = 16  # instructions before the first network's test
_PER_NETWORK = 13  # the most one network's test takes (four masked words, then a return)
MAX_NETWORKS = (MAX_INSTRUCTIONS - _HEAD - 2) // _PER_NETWORK

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Instruction = tuple[int, int, int, int]  # code, jt, jf, k


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


def _net(offset: int) -> int:
    return (_SKF_NET_OFF + offset) & 0xFFFFFFFF


def program(networks: Iterable[Network]) -> list[Instruction]:
    """The instructions of a filter that drops every packet from the `networks` (IPv4 and
    IPv6; on a dual-stack socket an IPv4 peer's packets are IPv4) and keeps the rest. At
    most MAX_NETWORKS networks.
    """
    listed = list(networks)
    if len(listed) > MAX_NETWORKS:
        raise ValueError(f"at most {MAX_NETWORKS} networks fit in one filter")
    body4 = [i for n in listed if n.version == 4 for i in _test(n)] + [(_RET_K, 0, 0, _KEEP)]
    body6 = [i for n in listed if n.version == 6 for i in _test(n)] + [(_RET_K, 0, 0, _KEEP)]
    # The IPv6 tests come first: a return does not end what the kernel's check of memory
    # reads carries on to the next instruction, and the IPv4 tests read M[0] alone.
    head: list[Instruction] = [
        (_LD_B_ABS, 0, 0, _net(0)),  # 0: the IP version, in the first nibble
        (_ALU_RSH_K, 0, 0, 4),  # 1
        (_JEQ_K, 0, 3, 4),  # 2: IPv4 on, else to 6
        (_LD_W_ABS, 0, 0, _net(12)),  # 3: the IPv4 source
        (_ST, 0, 0, 0),  # 4: into M[0]
        (_JA, 0, 0, 10 + len(body6)),  # 5: over the rest of the head and the IPv6 tests
        (_JEQ_K, 1, 0, 6),  # 6: IPv6 on to 8, else 7
        (_RET_K, 0, 0, _KEEP),  # 7: neither
    ]
    for word in range(4):  # 8..15: the IPv6 source into M[0..3], then its tests
        head += [(_LD_W_ABS, 0, 0, _net(8 + 4 * word)), (_ST, 0, 0, word)]
    assert len(head) == _HEAD
    return head + body6 + body4


def _test(network: Network) -> list[Instruction]:
    """Drop if the source (in M[0..]) is in `network`: each 32-bit word its prefix covers,
    masked and compared; a mismatch skips to the next network's test.
    """
    value, mask = network.network_address.packed, network.netmask.packed
    checks = [
        (
            at // 4,
            int.from_bytes(value[at : at + 4], "big"),
            int.from_bytes(mask[at : at + 4], "big"),
        )
        for at in range(0, len(value), 4)
        if any(mask[at : at + 4])
    ]
    out: list[Instruction] = []
    for n, (word, word_value, word_mask) in enumerate(checks):
        left = (len(checks) - n - 1) * 3  # the checks after this one
        out += [
            (_LD_MEM, 0, 0, word),
            (_ALU_AND_K, 0, 0, word_mask),
            (_JEQ_K, 0, left + 1, word_value),  # a mismatch: over the rest and the drop
        ]
    out.append((_RET_K, 0, 0, _DROP))
    return out


def attach(fd: int, networks: Iterable[Network]) -> None:
    """Filter the socket `fd` (not owned here) to drop `networks`; none: no filter."""
    listed = list(networks)
    sock = socket.socket(fileno=fd)
    try:
        if not listed:
            with contextlib.suppress(OSError):  # there was none
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            return
        code = program(listed)
        array = (_Instruction * len(code))(*[_Instruction(*i) for i in code])
        prog = struct.pack("HL", len(code), ctypes.addressof(array))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
    finally:
        sock.detach()
