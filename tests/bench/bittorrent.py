"""BitTorrent for the transfer race: bencode, a one-file .torrent, and a tiny loopback tracker."""

import hashlib
import ipaddress
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeAlias
from urllib.parse import unquote_to_bytes

Bencoded: TypeAlias = (
    int | bytes | str | Sequence["Bencoded"] | Mapping[bytes, "Bencoded"] | Mapping[str, "Bencoded"]
)

MIN_PIECE = 16 * 1024
MAX_PIECE = 16 * 1024 * 1024
# About a thousand pieces, as libtorrent's and mktorrent's automatic sizes give: 1 GiB -> 1 MiB.
TARGET_PIECES = 1024
INTERVAL = 1800  # seconds between a client's announces: none during a bench
MAX_SWARMS = 16
MAX_PEERS = 64
_EVENTS = ("", "started", "completed", "stopped")


def bencode(value: Bencoded) -> bytes:
    """`value` bencoded: dictionaries with their keys sorted as raw bytes."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, Mapping):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    return b"l" + b"".join(bencode(item) for item in value) + b"e"


def bdecode(data: bytes) -> Bencoded:
    """The value `data` bencodes (keys and strings as bytes); ValueError unless it is one."""
    try:
        value, end = _decode(data, 0, 0)
    except ValueError as error:  # int() and bytes.index() say it their own way
        raise ValueError(f"not one bencoded value: {error}") from None
    if end != len(data):
        raise ValueError(f"not one bencoded value: {len(data) - end} bytes after it")
    return value


def _decode(data: bytes, at: int, depth: int) -> tuple[Bencoded, int]:
    if depth > 32:
        raise ValueError("nested too deep")
    if at >= len(data):
        raise ValueError("truncated")
    lead = data[at : at + 1]
    if lead == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if lead in (b"l", b"d"):
        items: list[Bencoded] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = _decode(data, at, depth + 1)
            items.append(item)
        if lead == b"l":
            return items, at + 1
        keys, values = items[::2], items[1::2]
        if len(keys) != len(values) or not all(isinstance(k, bytes) for k in keys):
            raise ValueError("a dictionary needs string keys, each with a value")
        return {k: v for k, v in zip(keys, values, strict=True) if isinstance(k, bytes)}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    if length < 0 or colon + 1 + length > len(data):
        raise ValueError("a string runs past the end")
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


def piece_length_for(size: int) -> int:
    """A power of two that cuts `size` into at most TARGET_PIECES pieces, within bounds."""
    length = MIN_PIECE
    while length < MAX_PIECE and length * TARGET_PIECES < size:
        length *= 2
    return length


def _pieces(path: Path, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(length):
            yield hashlib.sha1(piece).digest()  # BitTorrent v1 pieces are SHA-1


def make_torrent(path: Path, announce: str) -> tuple[bytes, bytes]:
    """The .torrent (BitTorrent v1, one file) of `path` announcing to `announce`, and its
    info hash.
    """
    size = path.stat().st_size
    length = piece_length_for(size)
    info: dict[str, Bencoded] = {
        "length": size,
        "name": path.name,
        "piece length": length,
        "pieces": b"".join(_pieces(path, length)),
    }
    encoded_info = bencode(info)
    torrent = b"d8:announce" + bencode(announce) + b"4:info" + encoded_info + b"e"
    return torrent, hashlib.sha1(encoded_info).digest()


@dataclass(frozen=True)
class Announce:
    """One checked announce: who, in which swarm, where it listens, and what happened."""

    info_hash: bytes
    peer_id: bytes
    host: str
    port: int
    event: str


def parse_announce(query: str, client_host: str) -> Announce:
    """The announce in `query` (the URL's part after `?`) from `client_host`; ValueError naming
    what is wrong. An `ip` parameter is believed only when it is a loopback address.
    """
    fields: dict[str, bytes] = {}
    for part in query.split("&")[:64]:
        key, _, value = part.partition("=")
        if key in ("info_hash", "peer_id", "port", "event", "ip"):
            fields[key] = unquote_to_bytes(value.replace("+", " "))
    info_hash, peer_id = fields.get("info_hash", b""), fields.get("peer_id", b"")
    if len(info_hash) != 20 or len(peer_id) != 20:
        raise ValueError("info_hash and peer_id must be 20 bytes each")
    port_text = fields.get("port", b"")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("port must be 1-65535")
    event = fields.get("event", b"").decode(errors="replace")
    if event not in _EVENTS:
        raise ValueError("event must be started, completed or stopped")
    host = client_host
    claimed = fields.get("ip", b"").decode(errors="replace")
    try:
        if claimed and ipaddress.IPv4Address(claimed).is_loopback:
            host = claimed
    except ValueError:
        pass  # a name or IPv6: the address the request came from stands
    return Announce(info_hash, peer_id, host, int(port_text), event)


def compact_peers(peers: list[Announce]) -> bytes:
    """Peers as BEP 23's compact string: 4 bytes of IPv4 address, 2 of port, each."""
    return b"".join(ipaddress.IPv4Address(p.host).packed + p.port.to_bytes(2, "big") for p in peers)


class Swarms:
    """Who announced to which info hash, bounded; thread-safe."""

    def __init__(self) -> None:
        self._peers: dict[bytes, dict[bytes, Announce]] = {}
        self._changed = threading.Condition()

    def announce(self, announce: Announce) -> bytes:
        """Record `announce`; the bencoded answer: the swarm's other peers."""
        with self._changed:
            swarm = self._peers.get(announce.info_hash)
            if swarm is None:
                if len(self._peers) >= MAX_SWARMS:
                    return bencode({"failure reason": "this tracker is full"})
                swarm = self._peers.setdefault(announce.info_hash, {})
            if announce.event == "stopped":
                swarm.pop(announce.peer_id, None)
            elif announce.peer_id in swarm or len(swarm) < MAX_PEERS:
                swarm[announce.peer_id] = announce
            others = [p for p in swarm.values() if p.peer_id != announce.peer_id]
            self._changed.notify_all()
        return bencode(
            {"interval": INTERVAL, "complete": len(swarm), "peers": compact_peers(others)}
        )

    def wait_for_peer(self, info_hash: bytes, timeout: float) -> bool:
        """Whether some peer of `info_hash` announced within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self._peers.get(info_hash)), timeout)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/announce":
            self.send_error(404, "only /announce is here")
            return
        try:
            body = self.server.swarms.announce(parse_announce(query, self.client_address[0]))
        except ValueError as error:
            body = bencode({"failure reason": str(error)})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a bench prints its own progress."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.swarms = Swarms()


class Tracker:
    """A BitTorrent HTTP tracker on a free loopback port, served by a thread of this process."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.swarms = self._server.swarms

    @property
    def url(self) -> str:
        """The announce URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/announce"

    def __enter__(self) -> "Tracker":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
