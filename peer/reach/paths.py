"""The paths by which one peer reaches another, and a count of connections by path."""

import enum
import threading


class Path(enum.Enum):
    """How a connection to a peer is made, in the order a downloader tries them."""

    DIRECT = "direct"  # to the address the tracker lists
    LOCAL = "local"  # to an address on the peer's own network (both behind one NAT)
    REVERSE = "reverse"  # the peer dialled us, asked by the tracker
    RELAY = "relay"  # both dialled a relay, which pairs and copies


class PathCounts:
    """Connections counted by path; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(Path, 0)

    def add(self, path: Path) -> None:
        """Count one more connection by `path`."""
        with self._lock:
            self._counts[path] += 1

    def snapshot(self) -> dict[str, int]:
        """Every path's count, by its name."""
        with self._lock:
            return {path.value: count for path, count in self._counts.items()}
