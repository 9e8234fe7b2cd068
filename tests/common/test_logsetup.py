"""The command lines' log lines: a message from the network cannot forge or repaint a line."""

import logging
import sys

from napshare.common.logsetup import EscapingFormatter


def test_log_messages_are_escaped_and_tracebacks_keep_their_lines() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        info = sys.exc_info()
    record = logging.LogRecord(
        "napshare.peer", logging.WARNING, __file__, 1, "got %s", ("a\x1b[2J\nPeer x",), info
    )

    text = EscapingFormatter("%(levelname)s %(message)s").format(record)

    first, *rest = text.splitlines()
    assert first == "WARNING got a\\x1b[2J\\nPeer x"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: boom"
