"""The machine's limit: a file sent with socket.sendfile, received with recv_into onto disk.

python -m tests.bench.rawtcp serve FILE        prints `raw TCP serving on 127.0.0.1:PORT`
python -m tests.bench.rawtcp fetch ADDRESS OUT writes the whole stream to OUT, no checks
"""

import argparse
import socket
import threading
from pathlib import Path

BUFFER = 1024 * 1024


def _send(connection: socket.socket, path: Path) -> None:
    with connection, path.open("rb") as source:
        connection.sendfile(source)


def serve(path: Path, host: str = "127.0.0.1") -> None:
    """Send the whole of `path` to every client that connects, until killed."""
    with socket.create_server((host, 0)) as listener:
        print(f"raw TCP serving on {host}:{listener.getsockname()[1]}", flush=True)
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=_send, args=(connection, path), daemon=True).start()


def fetch(address: str, out: Path) -> int:
    """Receive until the sender closes, writing into `out`; the byte count."""
    host, _, port = address.rpartition(":")
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    total = 0
    with socket.create_connection((host, int(port))) as connection, out.open("wb") as sink:
        while True:
            received = connection.recv_into(buffer)
            if not received:
                return total
            sink.write(view[:received])
            total += received


def main() -> None:
    """Command line: serve FILE, or fetch ADDRESS OUT."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.rawtcp")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("file", type=Path)
    fetch_parser = commands.add_parser("fetch")
    fetch_parser.add_argument("address")
    fetch_parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.file)
    else:
        fetch(args.address, args.out)


if __name__ == "__main__":
    main()
