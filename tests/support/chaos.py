"""Chaos for tracker replicas on one store: a storm of Joins, Updates, Heartbeats, Leaves and
Searches sent to random replicas while replicas are SIGKILLed and restarted, then the checks
every acknowledged change must pass. Used by tests/tracker/store/test_chaos.py (seconds) and
by `make soak` (a section of its minutes).

What is checked afterwards, through a store object of its own:
- every registration whose last change was acknowledged holds exactly the files it was told
  (a call that failed on its way, the replica killed under it, may have happened or not: then
  either state is right);
- no Search said `gathering`: a replica that restarts on a store that kept its data knows at
  once all it knew;
- the store's audit: every word entry points to a live record, every record is indexed, every
  count matches a recount, every registration has one lease and no lease is left without one.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from napshare.tracker.store.redis_store import RedisStore
from napshare.v1 import file_info_pb2, tracker_pb2, tracker_pb2_grpc

from tests.support.redis import RedisServer, store_url

LISTENING = re.compile(rb"listening on (127\.0\.0\.\d+):(\d+)")
NAMES = [
    f"{word}-{n}.{ext}"
    for word in ("raft", "paxos", "gossip")
    for n in range(4)
    for ext in ("mp4", "pdf")
]
WORDS = ["raft", "paxos mp4", "gossip-2", "pdf", "-1.", "nothing"]
RPC_TIMEOUT = 5.0
# Every simulated peer calls from 127.0.0.1: one address may hold them all.
REPLICA_FLAGS = ("--max-peers-per-address", "100000")
DIGEST = "ab" * 32


@dataclass
class Replica:
    """One `python -m napshare.tracker` process on the shared store."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path


def start_replica(store: str, folder: Path, *flags: str) -> Replica:
    """A plain text tracker using `store`, once it listens: on 127.0.0.1 and a free port,
    unless `flags` say --host and --port.
    """
    log = Path(tempfile.mkstemp(prefix="replica-", suffix=".log", dir=folder)[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "napshare.tracker", "--plaintext", "--host", "127.0.0.1",
             "--port", "0", "--store", store, *flags],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_bytes())
        if found:
            return Replica(process, f"{found.group(1).decode()}:{int(found.group(2))}", log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"a replica did not start: {log.read_text(errors='replace')[-2000:]}")


@dataclass
class Peer:
    """What a worker knows of one simulated peer: its token and the files the store may hold
    for it (one state when its last change was acknowledged, more when a call failed on its
    way; None: not registered).
    """

    port: int
    token: str = ""
    states: set[frozenset[str] | None] = field(default_factory=lambda: {None})

    @property
    def certain(self) -> bool:
        return len(self.states) == 1


@dataclass
class Report:
    """What a storm did and what the checks found."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    kills: int = 0
    problems: list[str] = field(default_factory=list)
    registered: int = 0
    entries: int = 0
    seconds: float = 0.0


class Storm:
    """Replicas of one store under load and SIGKILLs."""

    def __init__(self, store: str, folder: Path, *, replicas: int = 3, flags: tuple[str, ...] = ()):
        self.store = store
        self.folder = folder
        # A store older than a lease: a replica that restarts must not say gathering.
        primer = RedisStore(store, heartbeat_interval=0.01)
        primer.close()
        time.sleep(0.1)
        self.flags = (*REPLICA_FLAGS, *flags)
        self.replicas = [start_replica(store, folder, *self.flags) for _ in range(replicas)]
        self.lock = threading.Lock()
        self.report = Report()
        self._channels: dict[str, grpc.Channel] = {}

    def stub(self) -> tracker_pb2_grpc.TrackerServiceStub:
        """A stub of a replica picked at random."""
        with self.lock:
            address = random.choice(self.replicas).address
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = grpc.insecure_channel(address)
        return tracker_pb2_grpc.TrackerServiceStub(channel)

    def count(self, rpc: str, code: str) -> None:
        with self.lock:
            self.report.calls[(rpc, code)] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.report.problems.append(text)

    def run(
        self, seconds: float, *, workers: int = 4, peers: int = 12, kill_every: float = 1.0
    ) -> Report:
        """Storm for `seconds`, then check; the replicas are stopped afterwards."""
        started = time.monotonic()
        until = started + seconds
        everyone = [[Peer(30_000 + w * 1000 + n) for n in range(peers)] for w in range(workers)]
        threads = [
            threading.Thread(target=self._work, args=(mine, until, random.Random(n)))
            for n, mine in enumerate(everyone)
        ]
        threads.append(threading.Thread(target=self._kill, args=(until, kill_every)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.report.seconds = time.monotonic() - started
        self._check([peer for mine in everyone for peer in mine])
        return self.report

    def stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        for replica in self.replicas:
            replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.process.kill()

    def _kill(self, until: float, every: float) -> None:
        rng = random.Random(7)
        while time.monotonic() + every < until:
            time.sleep(every)
            with self.lock:
                victim = rng.randrange(len(self.replicas))
                replica = self.replicas[victim]
            replica.process.send_signal(signal.SIGKILL)
            replica.process.wait()
            fresh = start_replica(self.store, self.folder, *self.flags)
            with self.lock:
                self.replicas[victim] = fresh
                self.report.kills += 1

    def _work(self, peers: list[Peer], until: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            peer = rng.choice(peers)
            action = rng.random()
            if not peer.certain or (None in peer.states and action < 0.6) or action < 0.15:
                self._join(peer, rng)
            elif action < 0.35:
                self._update(peer, rng)
            elif action < 0.6:
                self._heartbeat(peer)
            elif action < 0.68:
                self._leave(peer)
            else:
                self._search(rng)

    def _call(self, rpc: str, request: object) -> tuple[str, object]:
        stub = self.stub()
        try:
            reply = getattr(stub, rpc)(request, timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            code = error.code().name  # type: ignore[attr-defined]
            self.count(rpc, code)
            return code, error.details()  # type: ignore[attr-defined]
        self.count(rpc, "OK")
        return "OK", reply

    def _join(self, peer: Peer, rng: random.Random) -> None:
        names = frozenset(rng.sample(NAMES, rng.randint(0, 5)))
        request = tracker_pb2.JoinRequest(
            host="127.0.0.1", port=peer.port, files=[_info(n) for n in sorted(names)]
        )
        code, reply = self._call("Join", request)
        if code == "OK":
            peer.token = reply.token  # type: ignore[attr-defined]
            peer.states = {names}
        elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            peer.states = peer.states | {names}  # it may have happened, with a token unknown
        else:
            self.problem(f"Join of {peer.port} answered {code}: {reply}")

    def _update(self, peer: Peer, rng: random.Random) -> None:
        (state,) = peer.states
        if state is None:
            return
        added = frozenset(rng.sample(NAMES, rng.randint(0, 2)))
        removed = frozenset(rng.sample(sorted(state), min(len(state), rng.randint(0, 2)))) - added
        request = tracker_pb2.UpdateRequest(
            peer_id=f"127.0.0.1:{peer.port}",
            token=peer.token,
            files=[_info(n) for n in sorted(added)],
            removed_names=sorted(removed),
        )
        code, reply = self._call("Update", request)
        after = (state | added) - removed
        if code == "OK":
            peer.states = {after}
        elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            peer.states = {state, after}
        else:
            self.problem(f"Update of acknowledged peer {peer.port} answered {code}: {reply}")

    def _heartbeat(self, peer: Peer) -> None:
        (state,) = peer.states
        if state is None:
            return
        request = tracker_pb2.HeartbeatRequest(peer_id=f"127.0.0.1:{peer.port}", token=peer.token)
        code, reply = self._call("Heartbeat", request)
        if code not in ("OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
            self.problem(f"Heartbeat of acknowledged peer {peer.port} answered {code}: {reply}")

    def _leave(self, peer: Peer) -> None:
        (state,) = peer.states
        if state is None:
            return
        request = tracker_pb2.LeaveRequest(peer_id=f"127.0.0.1:{peer.port}", token=peer.token)
        code, reply = self._call("Leave", request)
        if code == "OK":
            peer.states = {None}
        elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            peer.states = {state, None}
        else:
            self.problem(f"Leave of acknowledged peer {peer.port} answered {code}: {reply}")

    def _search(self, rng: random.Random) -> None:
        if rng.random() < 0.5:
            request = tracker_pb2.SearchRequest(name=rng.choice(NAMES), page_size=50)
        else:
            request = tracker_pb2.SearchRequest(query=rng.choice(WORDS), page_size=50)
        code, reply = self._call("Search", request)
        if code == "OK" and reply.gathering:  # type: ignore[attr-defined]
            self.problem("a Search said gathering, though the store kept everything")
        elif code not in ("OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
            self.problem(f"Search answered {code}: {reply}")

    def _check(self, peers: list[Peer]) -> None:
        checker = RedisStore(self.store)
        try:
            snapshot = checker.snapshot()
            for peer in peers:
                held = snapshot.get(f"127.0.0.1:{peer.port}")
                found = None if held is None else frozenset(f.name for f in held)
                if found not in peer.states:
                    what = "acknowledged" if peer.certain else "possible"
                    self.problem(
                        f"peer {peer.port} holds {sorted(found or [])!r} (registered: "
                        f"{held is not None}), not one of the {what} states"
                    )
            self.report.problems += checker.audit()
            stats = checker.stats()
            if stats.peers != len(snapshot):
                self.problem(f"{stats.peers} registrations counted, {len(snapshot)} listed")
            self.report.registered = stats.peers
            self.report.entries = stats.entries
        finally:
            checker.close()


def _info(name: str) -> file_info_pb2.FileInfo:
    return file_info_pb2.FileInfo(name=name, size=len(name), sha256=DIGEST)


def store_loss(server: RedisServer, folder: Path) -> list[str]:
    """Restart `server` without its data under two replicas: what went wrong, if anything.

    Each replica must notice (one log line each) and its searches say `gathering` until the
    peers had a lease to join again, and not after.
    """
    problems: list[str] = []
    store = store_url(server)
    replicas = [start_replica(store, folder, "--heartbeat-interval", "1") for _ in range(2)]
    channels = [grpc.insecure_channel(replica.address) for replica in replicas]
    try:
        time.sleep(3.2)  # a new store gathers for one lease (3 s): let that pass first
        server.kill()
        server.start()
        for replica, channel in zip(replicas, channels, strict=True):
            stub = tracker_pb2_grpc.TrackerServiceStub(channel)
            deadline = time.monotonic() + 10
            while True:
                try:
                    answer = stub.Search(tracker_pb2.SearchRequest(name="x"), timeout=RPC_TIMEOUT)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        problems.append(f"replica {replica.address} did not answer again")
                        answer = None
                        break
                    time.sleep(0.1)
            if answer is not None and not answer.gathering:
                problems.append(f"replica {replica.address} did not say gathering")
        time.sleep(3.2)
        for replica, channel in zip(replicas, channels, strict=True):
            stub = tracker_pb2_grpc.TrackerServiceStub(channel)
            if stub.Search(tracker_pb2.SearchRequest(name="x"), timeout=RPC_TIMEOUT).gathering:
                problems.append(f"replica {replica.address} still says gathering after a lease")
            noticed = replica.log.read_text(errors="replace").count("lost its data")
            if noticed != 1:
                problems.append(f"replica {replica.address} noticed the loss {noticed} times")
    finally:
        for channel in channels:
            channel.close()
        for replica in replicas:
            replica.process.kill()
            replica.process.wait()
    return problems
