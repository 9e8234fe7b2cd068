"""`serve` with the tracker down says so once, not once per part that tries to join."""

import signal
import socket
import threading
import time
from pathlib import Path

from tests.support.peers import spawn_cli


def test_serve_with_the_tracker_down_says_so_once(tmp_path: Path) -> None:
    # A "tracker" that takes each connection and closes it at once: down, for gRPC, and it
    # counts how often the peer tried.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    tries: list[float] = []

    def refuse() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            tries.append(time.monotonic())
            connection.close()

    threading.Thread(target=refuse, daemon=True).start()
    folder = tmp_path / "shared"
    folder.mkdir()
    serve = spawn_cli(
        *("serve", "--dir", str(folder), "--tracker", f"127.0.0.1:{listener.getsockname()[1]}"),
        *("--host", "127.0.0.1", "--no-menu"),
    )
    try:
        deadline = time.monotonic() + 60
        while len(tries) < 3:  # the first Join, and the link's own tries after it
            assert time.monotonic() < deadline, f"only {len(tries)} tries"
            assert serve.poll() is None
            time.sleep(0.05)
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=30)
        listener.close()

    assert serve.returncode == 0, err
    unreachable = [line for line in err.splitlines() if "is unreachable" in line]
    assert len(unreachable) == 1, err
    assert unreachable[0].endswith("; will keep trying")
    assert out.startswith("listening on 127.0.0.1:")
