"""Child processes of the tests: their environment, and signals aimed at one of their threads."""

import ctypes
import os
from pathlib import Path


def cli_env(lang: str = "C.UTF-8") -> dict[str, str]:
    """The environment for a `python -m napshare.*` process: only LANG (`lang`) chooses the
    language of its lines, and its output is unbuffered.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env["LANG"] = lang
    env["PYTHONUNBUFFERED"] = "1"
    return env


def signal_a_thread_not_main(pid: int, sig: int) -> None:
    """Send `sig` to the newest thread of process `pid` that is not its main thread.

    The kernel may hand a signal sent to the process (kill) to any of its threads; tgkill
    aims it at one, so that a test needs no luck to have it land off the main thread. Only
    the threads Python made are chosen (they share the main thread's name): gRPC's own pool
    threads come and go with the load, and a signal aimed at a thread that ends is lost, which
    a signal sent to the process never is.
    """

    def name(tid: int) -> str:
        try:
            return Path(f"/proc/{pid}/task/{tid}/comm").read_text()
        except OSError:
            return ""

    main = name(pid)
    threads = [
        int(tid)
        for tid in os.listdir(f"/proc/{pid}/task")
        if int(tid) != pid and name(int(tid)) == main
    ]
    assert threads, f"process {pid} runs no thread of its own besides its main one"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, max(threads), sig) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
