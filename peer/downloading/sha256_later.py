"""The sha256 of a download its pieces root verified: computed afterwards, off the receiving
path and at low priority, before the file is announced; and the sources whose listed sha256
it disproves, not used again for that version.
"""

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable

from napshare.peer.folder.store import NotSharedError, SharedFile, SharedFolder

logger = logging.getLogger(__name__)

# The nice value of the thread that computes it (Linux sets it per thread): the downloads
# and uploads running beside it come first.
NICENESS = 10

VersionKey = tuple[int, str, str]  # (size, sha256, pieces root), as a listing gives them


class Disagreements:
    """The sources of each version whose listed sha256 is not the sha256 of the bytes that its
    pieces root verified. Safe to use from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[VersionKey, set[str]] = {}

    def add(self, version: VersionKey, peers: Iterable[str]) -> None:
        with self._lock:
            self._by_version.setdefault(version, set()).update(peers)

    def of(self, version: VersionKey) -> frozenset[str]:
        """The peers not to use again for `version`."""
        with self._lock:
            return frozenset(self._by_version.get(version, ()))


def disproved_line(name: str, version: VersionKey, actual: str, peers: Iterable[str]) -> str:
    """The report of sources whose listed sha256 the bytes disprove."""
    size, listed, root = version
    return (
        f"{' '.join(sorted(peers))} list {name} ({size} bytes, pieces root {root}) with sha256 "
        f"{listed}, but the bytes that root verified have sha256 {actual}; not using them "
        "again for that version"
    )


def finish_later(
    folder: SharedFolder,
    name: str,
    version: VersionKey,
    *,
    sources: Callable[[], Iterable[str]],
    disagreements: Disagreements,
    on_done: Callable[[SharedFile], None],
) -> threading.Thread:
    """Start a thread that computes the sha256 of `name` (remembered in `folder` with its root
    alone), reports the `sources()` of `version` if it is not the listed one, then calls
    `on_done` with the file, its sha256 computed. The file is not announced before that.
    """

    def run() -> None:
        # Not Linux, or not allowed: the same priority as the downloads.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        try:
            shared = folder.get(name)
        except (NotSharedError, OSError) as error:
            logger.warning("could not compute the sha256 of %s: %s", name, error)
            return
        check(shared, version, sources, disagreements)
        on_done(shared)

    thread = threading.Thread(target=run, name=f"sha256-{name}", daemon=True)
    thread.start()
    return thread


def check(
    shared: SharedFile,
    version: VersionKey,
    sources: Callable[[], Iterable[str]],
    disagreements: Disagreements,
) -> bool:
    """Whether the sha256 computed for `shared` is the one `version` lists; when it is not,
    and `shared` still holds the bytes that root verified, its sources are reported and
    recorded in `disagreements`.
    """
    size, listed, root = version
    if shared.sha256 == listed or (shared.size, shared.pieces_root) != (size, root):
        return True
    peers = list(sources())
    disagreements.add(version, peers)
    logger.warning("%s", disproved_line(shared.name, version, shared.sha256, peers))
    return False
