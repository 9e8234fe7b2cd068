"""Fewer malloc arenas for a process whose threads pass large buffers around (glibc only).

glibc gives each new thread its own arena, up to 8 per core; a freed 1 MiB chunk stays in the
arena of the thread that freed it, so a download's stream threads each keep some megabytes
of RSS. Two arenas took a 3-source download's peak from 93–101 MB to 82 MB.
"""

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_arenas(count: int = ARENAS) -> None:
    """Let malloc use at most `count` arenas from now on; nothing where that is not glibc's."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl has no mallopt)
    if not mallopt(_M_ARENA_MAX, count):
        logger.debug("mallopt(M_ARENA_MAX, %d) was refused", count)
