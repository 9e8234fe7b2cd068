"""The accept loop of the reach listeners: each accepted connection is handled on a thread of
its own, at most as many at once as the caller's slots allow (more are closed), and running out
of file descriptors pauses the loop instead of ending it.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_PAUSE = 0.1  # seconds the loop waits when the process is out of descriptors or memory


def accept_bounded(
    listener: socket.socket,
    slots: threading.BoundedSemaphore,
    handle: Callable[[socket.socket], None],
    name: str,
) -> None:
    """Accept on `listener` until it is closed, calling `handle(connection)` on a new thread
    for each connection while a slot of `slots` is free; `handle` owns the connection and
    releases its slot when it is done with it.
    """
    while True:
        try:
            accepted, _ = listener.accept()
        except ConnectionAbortedError:
            continue
        except OSError as error:
            if error.errno not in OUT_OF_RESOURCES:
                return  # the listener was closed
            logger.warning("%s cannot accept a connection now: %s", name, error)
            time.sleep(RESOURCE_PAUSE)
            continue
        if not slots.acquire(blocking=False):
            accepted.close()
            continue
        threading.Thread(target=handle, args=(accepted,), name=name, daemon=True).start()
