"""The switchboard: which peers hold a Listen stream, and the events waiting on each.

A peer the tracker cannot reach keeps one Listen stream open; Connect hands that stream the
events that ask the peer to dial out. No gRPC here: the servicer drains each Listener into its
stream. A store-backed switchboard that forwards events between replicas can stand in for
this one: the servicer and the Connect policy use only register, unregister, deliver,
listening, end and close.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Generic, TypeVar

from napshare.tracker.errors import ListenersFullError, ListenReplacedError, TrackerError

logger = logging.getLogger(__name__)

MAX_LISTENERS = 1024  # Listen streams held at once (--max-listeners); each holds a thread
MAX_QUEUED = 64  # events waiting on one stream; past it, more are refused (the peer is slow)
FULL_RETRY_SECONDS = 30.0  # what a peer refused for LISTENERS_FULL is told to wait
# Seconds between the events a Listen stream sends when nothing else is sent
# (--listen-keepalive): well under the idle timeouts of home routers' mappings (often 60 s+).
LISTEN_KEEPALIVE = 20.0

Event = TypeVar("Event")


class Listener(Generic[Event]):
    """One Listen stream: the events for it, in order, until it ends."""

    def __init__(self, peer_id: str, token: str, max_queued: int = MAX_QUEUED) -> None:
        self.peer_id = peer_id
        self.token = token
        self._max_queued = max_queued
        self._events: collections.deque[Event] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self.error: TrackerError | None = None  # why the tracker ended it, if it did

    @property
    def closed(self) -> bool:
        """Whether the stream ended (it was replaced, its peer left, or the call is over)."""
        return self._closed

    def put(self, event: Event) -> bool:
        """Queue `event`; False if the stream ended or has MAX_QUEUED events waiting."""
        with self._condition:
            if self._closed or len(self._events) >= self._max_queued:
                return False
            self._events.append(event)
            self._condition.notify()
            return True

    def next(self, timeout: float) -> Event | None:
        """The next event, waiting up to `timeout` seconds; None when none came or it ended."""
        with self._condition:
            if not self._events and not self._closed:
                self._condition.wait(timeout)
            if self._closed or not self._events:
                return None
            return self._events.popleft()

    def close(self, error: TrackerError | None = None) -> None:
        """End the stream; `error` says why to the peer (None: its own call ended)."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self.error = error
            self._events.clear()
            self._condition.notify_all()


class Switchboard(Generic[Event]):
    """The Listen streams of registered peers, at most one per peer id and `max_listeners` in
    all; thread-safe.
    """

    def __init__(self, max_listeners: int = MAX_LISTENERS) -> None:
        if max_listeners < 1:
            raise ValueError(f"max listeners must be at least 1, not {max_listeners}")
        self.max_listeners = max_listeners
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener[Event]] = {}
        self._closed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._listeners)

    def register(self, peer_id: str, token: str) -> Listener[Event]:
        """A new stream for `peer_id`'s registration of `token`; an older stream of the same
        peer ends with ListenReplacedError. ListenersFullError when the tracker holds as many
        streams as it allows (a replacement always gets in).
        """
        listener: Listener[Event] = Listener(peer_id, token)
        with self._lock:
            old = self._listeners.get(peer_id)
            if old is None and (self._closed or len(self._listeners) >= self.max_listeners):
                raise ListenersFullError(
                    f"the tracker holds {len(self._listeners)} Listen streams, as many as it "
                    f"allows; open the stream again in {FULL_RETRY_SECONDS:g} s",
                    metadata={"limit": str(self.max_listeners), "flag": "--max-listeners"},
                    retry_delay=FULL_RETRY_SECONDS,
                )
            self._listeners[peer_id] = listener
        if old is not None:
            old.close(
                ListenReplacedError(
                    f"a newer Listen of peer {peer_id} replaced this stream; keep the newer one"
                )
            )
            logger.debug("peer %s opened Listen again; its older stream ends", peer_id)
        return listener

    def unregister(self, listener: Listener[Event]) -> None:
        """Forget `listener` (its call ended), unless a newer stream already replaced it."""
        listener.close()
        with self._lock:
            if self._listeners.get(listener.peer_id) is listener:
                del self._listeners[listener.peer_id]

    def listening(self, peer_id: str, token: str) -> bool:
        """Whether `peer_id`'s registration of `token` holds a stream now."""
        with self._lock:
            listener = self._listeners.get(peer_id)
        return listener is not None and listener.token == token and not listener.closed

    def deliver(self, peer_id: str, token: str, event: Event) -> bool:
        """Send `event` to `peer_id`'s stream if the registration of `token` holds one; False
        if it does not (another registration's stream never gets it) or its queue is full.
        """
        with self._lock:
            listener = self._listeners.get(peer_id)
        if listener is None or listener.token != token:
            return False
        return listener.put(event)

    def end(self, peer_id: str, error: TrackerError) -> None:
        """End `peer_id`'s stream, if it holds one, with `error` (it left, say)."""
        with self._lock:
            listener = self._listeners.pop(peer_id, None)
        if listener is not None:
            listener.close(error)

    def close(self, error: TrackerError | None = None) -> None:
        """End every stream, with `error` if given, and take no more (the tracker stops)."""
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
            self._closed = True
        for listener in listeners:
            listener.close(error)
