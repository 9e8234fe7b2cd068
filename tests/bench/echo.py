"""The gRPC ceiling: a bare unary server that answers every method with the request's bytes.

    python -m tests.bench.echo [--workers N]   prints `echo serving on 127.0.0.1:PORT`

No protobuf is parsed or built, so what it costs is gRPC's own work per call. The load
generator sends it the same Search requests it sends the tracker.
"""

import argparse
import signal
import threading
from concurrent import futures
from typing import Any

import grpc


def _echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


class _EchoEverything(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return grpc.unary_unary_rpc_method_handler(_echo)


def create_server(*, host: str = "127.0.0.1", port: int = 0, workers: int = 16) -> tuple[Any, int]:
    """A started echo server and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((_EchoEverything(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.echo")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    server, port = create_server(port=args.port, workers=args.workers)
    print(f"echo serving on 127.0.0.1:{port}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
