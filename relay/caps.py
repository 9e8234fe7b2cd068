"""The relay's caps, one home for their defaults and flags (napshare-relay's and the tracker's).

Every resource a stranger can make the relay spend has one: the bytes, seconds and rate of a
session, sessions per serving peer and in all, connections not yet paired per IP address and
in all, and how long a connection may take to show its ticket and to find its other side.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from napshare.common.cliargs import (
    byte_rate,
    byte_size,
    int_in_range,
    non_negative_number,
    positive_number,
)
from napshare.common.console import tr
from napshare.common.ratelimit import TokenBucket

GIB = 1024**3
MAX_COUNT = 1_000_000  # what a count flag accepts: far past what threads and sockets allow
RETRY_AFTER_SECONDS = 5  # what a FULL answer tells a side to wait before asking again


@dataclass(frozen=True)
class RelayCaps:
    """What one session and the whole relay may use. A 0 byte, second or rate cap: none."""

    session_bytes: int = 4 * GIB  # bytes a session carries each way: a lecture video in one
    session_seconds: float = 30 * 60  # how long a session lasts
    session_rate: float = 0  # bytes per second of one session, both ways together
    rate: float = 0  # bytes per second of all sessions together
    sessions_per_peer: int = 8  # sessions (paired or waiting) of one serving peer
    sessions: int = 256  # sessions (paired or waiting) in all; each paired one runs 3 threads
    pairing_seconds: float = 10.0  # how long a side that showed its ticket waits for the other
    waiting_per_address: int = 32  # connections of one IP address not yet paired
    waiting: int = 1024  # connections not yet paired, in all
    hello_seconds: float = 5.0  # how long a new connection has to send its whole hello

    def __post_init__(self) -> None:
        for name in ("sessions_per_peer", "sessions", "waiting_per_address", "waiting"):
            if getattr(self, name) < 1:
                raise ValueError(f"cap {name} must be at least 1")
        for name in ("pairing_seconds", "hello_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"cap {name} must be above 0")
        for name in ("session_bytes", "session_seconds", "session_rate", "rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"cap {name} must not be negative")


class AllBuckets(TokenBucket):
    """Several token buckets at once: a session's own rate and the relay's rate in all."""

    def __init__(self, buckets: list[TokenBucket]) -> None:
        super().__init__(min(bucket.rate for bucket in buckets))
        self._buckets = buckets

    @property
    def limited(self) -> bool:
        """True: each bucket is limited."""
        return True

    def reserve(self, count: int) -> float:
        """Take `count` bytes' tokens from every bucket; the longest of their waits."""
        return max(bucket.reserve(count) for bucket in self._buckets)


def session_rate(caps: RelayCaps, shared: TokenBucket | None) -> TokenBucket | None:
    """The bucket one new session paces itself by: its own rate cap and the shared one."""
    buckets = [TokenBucket(caps.session_rate)] if caps.session_rate else []
    if shared is not None:
        buckets.append(shared)
    if len(buckets) <= 1:
        return buckets[0] if buckets else None
    return AllBuckets(buckets)


def _flags() -> dict[str, tuple[str, object, str, str]]:
    """Each cap's flag (without a prefix), parser, metavar and help."""
    caps = RelayCaps()
    count = int_in_range(1, MAX_COUNT)
    return {
        "session_bytes": (
            "max-session-bytes",
            byte_size,
            "SIZE",
            tr(
                "bytes a relayed session carries each way, then the relay ends it and the "
                "download resumes in a new one (default {size}; 0: no cap)",
                size="1G",
            ),
        ),
        "session_seconds": (
            "max-session-seconds",
            non_negative_number,
            "SECONDS",
            tr(
                "how long a relayed session lasts (default {seconds:g}; 0: no cap)",
                seconds=caps.session_seconds,
            ),
        ),
        "session_rate": (
            "max-session-rate",
            byte_rate,
            "RATE",
            tr("bytes per second of one relayed session (default 0: no cap), such as 10M"),
        ),
        "rate": (
            "max-rate",
            byte_rate,
            "RATE",
            tr("bytes per second of all relayed sessions together (default 0: no cap)"),
        ),
        "sessions_per_peer": (
            "max-sessions-per-peer",
            count,
            "N",
            tr(
                "sessions of one serving peer, paired or waiting; more are answered FULL "
                "(default {n})",
                n=caps.sessions_per_peer,
            ),
        ),
        "sessions": (
            "max-sessions",
            count,
            "N",
            tr(
                "sessions in all, paired or waiting; more are answered FULL (default {n})",
                n=caps.sessions,
            ),
        ),
        "pairing_seconds": (
            "pairing-timeout",
            positive_number,
            "SECONDS",
            tr(
                "how long a side that showed its ticket waits for the other side "
                "(default {seconds:g})",
                seconds=caps.pairing_seconds,
            ),
        ),
        "waiting_per_address": (
            "max-waiting-per-address",
            count,
            "N",
            tr(
                "connections from one IP address not paired yet; more are answered FULL "
                "(default {n})",
                n=caps.waiting_per_address,
            ),
        ),
        "waiting": (
            "max-waiting",
            count,
            "N",
            tr(
                "connections not paired yet, in all; more are answered FULL (default {n})",
                n=caps.waiting,
            ),
        ),
        "hello_seconds": (
            "hello-timeout",
            positive_number,
            "SECONDS",
            tr(
                "how long a new connection has to send its ticket, then it is closed "
                "(default {seconds:g})",
                seconds=caps.hello_seconds,
            ),
        ),
    }


def add_cap_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """A flag for every cap, named `--{prefix}{flag}` (the tracker's prefix is `relay-`)."""
    caps = RelayCaps()
    group = parser.add_argument_group(
        tr("relay caps"),
        tr(
            "past a session's cap the relay closes both of its connections; past a count it "
            "answers FULL with a time to ask again"
        ),
    )
    for name, (flag, parse, metavar, help_text) in _flags().items():
        group.add_argument(
            f"--{prefix}{flag}",
            dest=_dest(prefix, name),
            type=parse,  # type: ignore[arg-type]
            default=getattr(caps, name),
            metavar=metavar,
            help=help_text,
        )


def caps_from_args(args: argparse.Namespace, prefix: str = "") -> RelayCaps:
    """The RelayCaps that add_cap_flags' flags (with the same prefix) set."""
    return RelayCaps(**{f.name: getattr(args, _dest(prefix, f.name)) for f in fields(RelayCaps)})


def _dest(prefix: str, name: str) -> str:
    return f"{prefix.replace('-', '_')}cap_{name}"
