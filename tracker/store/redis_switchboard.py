"""The switchboard of one replica on a Redis store: a Connect at any replica reaches the peer's
Listen stream, whichever replica holds it.

Each replica keeps its own streams as the plain Switchboard does, and the store keeps which
replica holds each peer's stream (a hash, peer id -> replica and registration token). An
event for a stream held elsewhere goes to that replica through Redis pub/sub, on a channel
of its own; so does the end of a stream (a newer Listen elsewhere, or the peer left). A
replica's channel has a subscriber exactly while it runs: one SIGKILLed has none, so its
streams count as gone until their peers open them again, at another replica.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from napshare.common import reasons
from napshare.tracker.errors import (
    ListenReplacedError,
    StoreUnavailableError,
    TrackerError,
    UnknownPeerError,
)
from napshare.tracker.switchboard import MAX_LISTENERS, Listener, Switchboard
from napshare.v1 import tracker_pb2
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

EVENT, END = b"e", b"x"  # the kinds of message between replicas
RETRY_SECONDS = 1.0  # what a caller is told to wait when the store does not answer
_ENDINGS: dict[str, type[TrackerError]] = {
    reasons.LISTEN_REPLACED: ListenReplacedError,
    reasons.PEER_NOT_REGISTERED: UnknownPeerError,
}
# Forget the record of a stream only if it is still this replica's (a newer one may be).
_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""
# Take the record for this replica; answer whose it was.
_TAKE = """
local before = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return before
"""

Event = tracker_pb2.ListenResponse


class SharedSwitchboard(Switchboard[Event]):
    """This replica's Listen streams, and the way to the others' through the store."""

    def __init__(self, client: Any, prefix: str, max_listeners: int = MAX_LISTENERS) -> None:
        super().__init__(max_listeners)
        self.replica = secrets.token_hex(8)
        self._client = client
        self._records = f"{{{prefix}}}:listeners"
        self._channels = f"{{{prefix}}}:replica:"
        self._take = client.register_script(_TAKE)
        self._forget = client.register_script(_FORGET)
        self._stopping = threading.Event()
        with self._errors():
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(**{self._channel(self.replica): self._on_message})
        self._thread = self._pubsub.run_in_thread(
            sleep_time=0.5, daemon=True, exception_handler=self._on_error
        )

    def register(self, peer_id: str, token: str) -> Listener[Event]:
        listener = super().register(peer_id, token)
        try:
            with self._errors():
                before = self._take(keys=[self._records], args=[peer_id, self._record(token)])
        except StoreUnavailableError:
            super().unregister(listener)
            raise
        if before is not None:
            holder, _ = _parse(before)
            if holder != self.replica:
                error = ListenReplacedError(
                    f"a newer Listen of peer {peer_id} replaced this stream; keep the newer one"
                )
                self._send(holder, END, peer_id, "", _ending(error))
        return listener

    def unregister(self, listener: Listener[Event]) -> None:
        super().unregister(listener)
        try:
            with self._errors():
                record = self._record(listener.token)
                self._forget(keys=[self._records], args=[listener.peer_id, record])
        except StoreUnavailableError:
            pass  # the record stays; its peer's next Listen, or this replica's end, replaces it

    def listening(self, peer_id: str, token: str) -> bool:
        if super().listening(peer_id, token):
            return True
        holder = self._holder(peer_id, token)
        if holder is None:
            return False
        with self._errors():
            subscribers = dict(self._client.pubsub_numsub(self._channel(holder)))
        return bool(subscribers.get(self._channel(holder).encode(), 0))

    def deliver(self, peer_id: str, token: str, event: Event) -> bool:
        if super().listening(peer_id, token):
            return super().deliver(peer_id, token, event)
        holder = self._holder(peer_id, token)
        if holder is None:
            return False
        return self._send(holder, EVENT, peer_id, token, event.SerializeToString())

    def end(self, peer_id: str, error: TrackerError) -> None:
        super().end(peer_id, error)
        with self._errors():
            record = self._client.hget(self._records, peer_id)
        if record is not None:
            holder, _ = _parse(record)
            if holder != self.replica:
                self._send(holder, END, peer_id, "", _ending(error))

    def close(self, error: TrackerError | None = None) -> None:
        super().close(error)
        self._stopping.set()
        self._thread.stop()
        with suppress(RedisError):
            self._pubsub.close()

    def _holder(self, peer_id: str, token: str) -> str | None:
        """The other replica that holds `peer_id`'s stream for the registration of `token`."""
        with self._errors():
            record = self._client.hget(self._records, peer_id)
        if record is None:
            return None
        holder, held_token = _parse(record)
        if holder == self.replica or held_token != token:
            return None
        return holder

    def _send(self, holder: str, kind: bytes, peer_id: str, token: str, payload: bytes) -> bool:
        """Publish to replica `holder`; whether it was there to hear it."""
        message = b"\0".join((kind, peer_id.encode(), token.encode(), payload))
        with self._errors():
            return bool(self._client.publish(self._channel(holder), message))

    def _on_message(self, message: dict[str, Any]) -> None:
        """A message from another replica for one of this replica's streams."""
        try:
            kind, peer, token, payload = bytes(message["data"]).split(b"\0", 3)
            peer_id = peer.decode()
            if kind == EVENT:
                super().deliver(peer_id, token.decode(), Event.FromString(payload))
            elif kind == END:
                reason, _, text = payload.decode().partition("\0")
                super().end(peer_id, _ENDINGS.get(reason, UnknownPeerError)(text))
        except Exception:
            logger.exception("a message between replicas could not be read; dropped")

    def _on_error(self, error: BaseException, pubsub: Any, thread: Any) -> None:
        """The store went away under the subscription: wait, and listen again."""
        if not self._stopping.is_set():
            logger.warning("the replicas' channel failed (%s); subscribing again", error)
            self._stopping.wait(RETRY_SECONDS)

    def _channel(self, replica: str) -> str:
        return self._channels + replica

    def _record(self, token: str) -> str:
        return f"{self.replica} {token}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except RedisError as error:
            raise StoreUnavailableError(
                f"the tracker's index store does not answer ({type(error).__name__}); "
                f"ask again in {RETRY_SECONDS:g} s",
                retry_delay=RETRY_SECONDS,
            ) from None


def _parse(record: bytes) -> tuple[str, str]:
    holder, _, token = record.decode().partition(" ")
    return holder, token


def _ending(error: TrackerError) -> bytes:
    return f"{error.reason}\0{error}".encode()
