"""Plain TCP from the command line, to see what a network lets through (run in a namespace):

    python tcpprobe.py serve PORT [--send TEXT] [--send-after S]
        accept connections on PORT; print `from HOST:PORT` for each; send TEXT on each after S s
        (then print `sent` or `send failed: ...`)
    python tcpprobe.py connect HOST PORT [--local-port P] [--send TEXT] [--read S] [--timeout S]
        print `connected`, `refused`, `timed out` or the error; with --send, send TEXT; with
        --read, wait up to S s for data and print `got TEXT` or `got nothing`

No napshare code: the suite's NAT checks must not depend on what they test.
"""

import argparse
import socket
import threading
import time


def serve(port: int, text: str | None, after: float) -> None:
    """Accept connections forever; greet each one with `text` after `after` seconds."""
    listener = socket.create_server(("0.0.0.0", port))
    print("listening", flush=True)

    def greet(connection: socket.socket) -> None:
        time.sleep(after)
        try:
            connection.sendall(text.encode() if text else b"")
            time.sleep(0.5)  # a reset the send provoked arrives meanwhile
            connection.sendall(b"\n")
            print("sent", flush=True)
        except OSError as error:
            print(f"send failed: {error.strerror or error}", flush=True)

    while True:
        connection, (host, peer_port) = listener.accept()
        print(f"from {host}:{peer_port}", flush=True)
        if text is not None:
            threading.Thread(target=greet, args=(connection,), daemon=True).start()


def connect(
    host: str, port: int, *, local_port: int, text: str | None, read: float, timeout: float
) -> None:
    """Connect once and say what happened."""
    try:
        connection = socket.create_connection(
            (host, port), timeout=timeout, source_address=("0.0.0.0", local_port)
        )
    except ConnectionRefusedError:
        print("refused", flush=True)
        return
    except TimeoutError:
        print("timed out", flush=True)
        return
    except OSError as error:
        print(error.strerror or str(error), flush=True)
        return
    print("connected", flush=True)
    with connection:
        if text is not None:
            connection.sendall(text.encode())
        if read:
            connection.settimeout(read)
            try:
                data = connection.recv(65536)
            except TimeoutError:
                data = b""
            except OSError as error:
                print(f"read failed: {error.strerror or error}", flush=True)
                return
            print(f"got {data.decode(errors='replace').strip() or 'nothing'}", flush=True)


def main() -> None:
    """Parse the command line and run `serve` or `connect`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("port", type=int)
    server.add_argument("--send")
    server.add_argument("--send-after", type=float, default=0.0)
    client = commands.add_parser("connect")
    client.add_argument("host")
    client.add_argument("port", type=int)
    client.add_argument("--local-port", type=int, default=0)
    client.add_argument("--send")
    client.add_argument("--read", type=float, default=0.0)
    client.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.send, args.send_after)
    else:
        connect(
            args.host,
            args.port,
            local_port=args.local_port,
            text=args.send,
            read=args.read,
            timeout=args.timeout,
        )


if __name__ == "__main__":
    main()
