"""What a download that fails says: one line per way to fail (nobody reached, every source
lied or showed another certificate, no such version, too large), naming at most LISTED peers.
"""

import time
from collections.abc import Iterable, Sequence

from napshare.common.console import tr
from napshare.peer.downloading.target import Target
from napshare.peer.downloading.versions import Version
from napshare.peer.errors import (
    ClientError,
    FileTooLargeError,
    NoPeerReachableError,
    PeerError,
    PeerIdentityError,
    VerificationFailedError,
)
from napshare.peer.units import human

LISTED = 8  # peers named in one line; the others are counted


def exhausted(name: str, target: Target) -> ClientError:
    if target.unlisted:
        return NoPeerReachableError(
            tr(
                "nobody could be reached for {name}: the tracker no longer lists any peer that "
                "has it ({failures})",
                name=name,
                failures=failures_text(
                    [target.failures[p] for p in sorted(target.unlisted) if p in target.failures]
                )
                or listed(target.unlisted),
            )
        )
    if target.impostors and target.impostors == target.banned:
        return PeerIdentityError(
            tr(
                "refused to download {name}: {peers} showed another certificate than the one "
                "the tracker lists (someone may be in the middle); nothing was kept",
                name=name,
                peers=listed(target.impostors),
            )
        )
    if target.banned:
        return VerificationFailedError(
            tr(
                "verification failed: the bytes of {name} from {peers} "
                "do not match its sha256 {sha256}",
                name=name,
                peers=listed(target.banned),
                sha256=target.sha256,
            )
        )
    return NoPeerReachableError(
        tr(
            "no peer has {name} with sha256 {sha256} any more ({peers})",
            name=name,
            sha256=target.sha256,
            peers=listed(target.dropped),
        )
    )


def final_failure(name: str, failures: list[ClientError]) -> ClientError:
    """What the download failed with, from the failures of the versions tried, in their
    order: the first that is not another certificate, since only when every version's
    sources showed one is someone likely in the middle.
    """
    others = [f for f in failures if not isinstance(f, PeerIdentityError)]
    if others:
        return others[0]
    if len(failures) == 1:
        return failures[0]
    return PeerIdentityError(
        tr(
            "refused to download {name}: the sources of every one of its {count} versions "
            "showed another certificate than the one the tracker lists (someone may be in the "
            "middle); nothing was kept",
            name=name,
            count=len(failures),
        )
    )


def check_size(name: str, target: Target, most: int) -> None:
    """Refuse a version listed larger than `most` bytes, before anything is allocated for it."""
    if target.size > most:
        raise FileTooLargeError(
            tr(
                "refused to download {name}: it is listed at {size} ({count} bytes), more "
                "than the largest file this peer downloads, {most} (--max-file-size)",
                name=name,
                size=human(target.size),
                count=format(target.size, ","),
                most=human(most),
            )
        )


def version_line(version: Version) -> str:
    """One version of a file, for the user: its sha256, size and how widely it is shared."""
    return tr(
        "sha256 {sha256}, {size} bytes, from {blocks} address blocks ({reached} reached)",
        sha256=version.sha256,
        size=format(version.size, ","),
        blocks=version.blocks,
        reached=version.reached_blocks,
    )


def several_versions(name: str, ranked: Sequence[Version], first: Version) -> str:
    """The line telling the user that the peers disagree on what `name` is."""
    return tr(
        "{count} versions of {name} are shared; trying first {version}. `napshare-peer "
        "search {name}` lists them; --sha256 picks one",
        count=len(ranked),
        name=name,
        version=version_line(first),
    )


def no_such_version(name: str, sha256: str, pieces_root: str, ranked: Sequence[Version]) -> str:
    asked = " ".join(
        part
        for part in (
            f"sha256 {sha256}" if sha256 else "",
            f"pieces root {pieces_root}" if pieces_root else "",
        )
        if part
    )
    return tr(
        "no peer shares {name} with {asked}; the tracker lists {versions}",
        name=name,
        asked=asked,
        versions="; ".join(version_line(v) for v in ranked[:LISTED]),
    )


def listed(peers: Iterable[str]) -> str:
    """Peers for a line: at most LISTED of them by name, sorted, and how many more."""
    names = sorted(peers)
    if len(names) <= LISTED:
        return " ".join(names)
    return tr("{peers} and {count} more", peers=" ".join(names[:LISTED]), count=len(names) - LISTED)


def failures_text(failures: list[PeerError]) -> str:
    """`peer A: why; peer B: why`, for a line about peers nobody could reach (at most LISTED
    of them, and how many more).
    """
    text = "; ".join(f"{f.peer}: {f.detail}" for f in failures[:LISTED])
    if len(failures) > LISTED:
        text += "; " + tr("and {count} more", count=len(failures) - LISTED)
    return text


def clock_time(monotonic: float) -> str:
    """The wall-clock time (HH:MM:SS) when time.monotonic() will be `monotonic`."""
    return time.strftime("%H:%M:%S", time.localtime(time.time() + monotonic - time.monotonic()))


def nobody_reached(name: str, failures: list[PeerError]) -> NoPeerReachableError:
    return NoPeerReachableError(
        tr(
            "nobody could be reached for {name}: {failures}",
            name=name,
            failures=failures_text(failures),
        )
    )


def gave_up(name: str, target: Target, seconds: float) -> NoPeerReachableError:
    down = target.down()
    if down:
        return NoPeerReachableError(
            tr(
                "gave up on {name}: nobody could be reached for {seconds} s ({failures})",
                name=name,
                seconds=format(seconds, "g"),
                failures=failures_text(down),
            )
        )
    return NoPeerReachableError(
        tr(
            "gave up on {name}: no peer sent a good piece for {seconds} s ({peers})",
            name=name,
            seconds=format(seconds, "g"),
            peers=listed(target.candidates()),
        )
    )
