"""Ports on the loopback interface."""

import socket


def free_port() -> int:
    """A port nothing listens on now (bound to port 0, then released).

    Only for a server that must come back on the port it had (a restarted tracker); a server
    that starts once binds port 0 itself.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
