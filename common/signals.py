"""SIGINT and SIGTERM reach the main thread's handlers whichever thread the kernel gave them to.

The kernel hands a process-directed signal to any thread that does not block it, and neither
gRPC's threads nor ours block any. Python runs a handler only in the main thread, when that
thread next runs bytecode: a main thread waiting in readline's select(), in time.sleep() or in
a lock never does, so a signal that landed elsewhere went unhandled and the peer never stopped.
Python's C-level handler writes the number of every signal it catches, on any thread, to the
wakeup fd; a thread reading it sends the main thread POKE, whose interruption of the blocking
call makes the main thread run the handlers still pending.
"""

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

# Sent to the main thread alone (pthread_kill), to interrupt what it waits in; does nothing.
POKE = signal.SIGRTMIN

_lock = threading.Lock()  # one forwarding thread per process
_forwarded: set[int] = set()

Handler = Callable[[int, FrameType | None], Any]


def handle(signals: Iterable[signal.Signals], handler: Handler) -> None:
    """Install `handler` for each of `signals`, run by the main thread (call from it, too)."""
    wanted = set(signals)
    with _lock:
        if not _forwarded:
            _start_forwarding()  # before the handlers: a signal on another thread is then poked
        _forwarded.update(wanted)
    for sig in wanted:
        signal.signal(sig, handler)


def _start_forwarding() -> None:
    read, write = os.pipe()
    os.set_blocking(write, False)  # a full pipe drops a byte rather than block a handler
    signal.signal(POKE, _ignore)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    main = threading.main_thread().ident
    assert main is not None  # the main thread has started: it is the one running this
    threading.Thread(target=_forward, args=(read, main), name="signal-forward", daemon=True).start()


def _forward(read: int, main: int) -> None:
    """Poke the main thread after each forwarded signal, wherever it landed (even there)."""
    while True:
        caught = os.read(read, 64)
        if any(number in _forwarded for number in caught):
            signal.pthread_kill(main, POKE)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """POKE's handler: the interruption is the point, so nothing is left to do."""
