"""Prometheus metrics of one gRPC server: RPCs by method and code, readings, an HTTP endpoint."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal
from wsgiref.simple_server import WSGIServer

import grpc
from napshare.common.address import format_address
from napshare.common.console import tr
from napshare.common.serving import port_in_use
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# An RPC lasts from a millisecond (Heartbeat) to many minutes (a Download of a big file).
LATENCY_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 300.0, 1800.0)
# The method label of a call to a method the server does not have: clients choose the method
# name, so it never becomes a label value by itself.
UNKNOWN_METHOD = "unknown"

Kind = Literal["gauge", "counter"]

if TYPE_CHECKING:
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:  # grpc's classes are generic only in grpc-stubs
    _Interceptor = grpc.ServerInterceptor


class Metrics:
    """The registry of one server (never the global one), so that servers in one process differ.

    `prefix` starts every name: napshare_tracker or napshare_peer.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self._rpcs = Counter(
            f"{prefix}_rpcs",
            "RPCs handled, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            f"{prefix}_rpc_duration_seconds",
            "How long RPCs took, from the call until the handler returned or the stream ended.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._readings = _Readings()
        self.registry.register(self._readings)

    def counter(self, name: str, help_text: str) -> Counter:
        """A counter the caller increments, named {prefix}_{name}_total."""
        return Counter(f"{self.prefix}_{name}", help_text, registry=self.registry)

    def reading(self, kind: Kind, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge or counter whose value `read` returns at each scrape; counters get _total."""
        self._readings.add(kind, f"{self.prefix}_{name}", help_text, read)

    def labelled_reading(
        self, kind: Kind, name: str, help_text: str, label: str, read: Callable[[], dict[str, int]]
    ) -> None:
        """Like reading, one sample per label value: `read` returns {value: count}."""
        self._readings.add_labelled(kind, f"{self.prefix}_{name}", help_text, label, read)

    def interceptor(self) -> grpc.ServerInterceptor[Any, Any]:
        """The server interceptor that counts and times every RPC of the server."""
        return _RpcInterceptor(self)

    def observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        """Count one finished RPC and how long it took since `started` (time.monotonic)."""
        self._rpcs.labels(method, code.name).inc()
        self._latency.labels(method).observe(time.monotonic() - started)

    def serve(self, host: str, port: int) -> MetricsEndpoint:
        """Serve /metrics over HTTP on host:port (0 picks a free port) on a daemon thread."""
        try:
            httpd, thread = start_http_server(port, host, registry=self.registry)
        except OSError as error:
            raise port_in_use(host, port) from error
        bound: int = httpd.server_port
        logger.debug("metrics on %s port %d", host, bound)
        return MetricsEndpoint(httpd, thread, host, bound)


class MetricsEndpoint:
    """A running metrics HTTP server."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread, host: str, port: int) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """Where to scrape, such as http://127.0.0.1:9464/metrics."""
        return f"http://{format_address(self.host, self.port)}/metrics"

    def line(self) -> str:
        """The line the command lines print when metrics are on."""
        return tr("metrics on {url}", url=self.url)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Readings(Collector):
    """Gauges and counters read from the servers' own state at each scrape."""

    def __init__(self) -> None:
        self._readings: list[tuple[Kind, str, str, Callable[[], float]]] = []
        self._labelled: list[tuple[Kind, str, str, str, Callable[[], dict[str, int]]]] = []

    def add(self, kind: Kind, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._readings.append((kind, name, help_text, read))

    def add_labelled(
        self, kind: Kind, name: str, help_text: str, label: str, read: Callable[[], dict[str, int]]
    ) -> None:
        self._labelled.append((kind, name, help_text, label, read))

    def collect(self) -> Iterable[Metric]:
        for kind, name, help_text, read in self._readings:
            if kind == "counter":
                yield CounterMetricFamily(name, help_text, value=read())
            else:
                yield GaugeMetricFamily(name, help_text, value=read())
        for kind, name, help_text, label, read_all in self._labelled:
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=[label])
            else:
                family = GaugeMetricFamily(name, help_text, labels=[label])
            for value, count in sorted(read_all().items()):
                family.add_metric([value], count)
            yield family


class _RpcInterceptor(_Interceptor):
    """Wraps each handler so that its end is counted with its status code and timed."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            self._metrics.observe(UNKNOWN_METHOD, grpc.StatusCode.UNIMPLEMENTED, time.monotonic())
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def measured(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.monotonic()
            try:
                response = behavior(request, context)
            except BaseException:
                self._metrics.observe(method, _code(context, grpc.StatusCode.UNKNOWN), started)
                raise
            self._metrics.observe(method, _code(context, grpc.StatusCode.OK), started)
            return response

        return measured

    def _streaming(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]]
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def measured(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.monotonic()
            once = threading.Lock()

            def end(code: grpc.StatusCode) -> None:
                if once.acquire(blocking=False):
                    self._metrics.observe(method, code, started)

            # A cancelled stream's generator is closed only when gRPC drops it (GeneratorExit
            # below); this counts the RPC when it ends even if something still holds it.
            context.add_callback(lambda: end(_code(context, grpc.StatusCode.CANCELLED)))
            try:
                yield from behavior(request, context)
            except GeneratorExit:
                end(grpc.StatusCode.CANCELLED)
                raise
            except BaseException:
                end(_code(context, grpc.StatusCode.UNKNOWN))
                raise
            end(_code(context, grpc.StatusCode.OK))

        return measured


def _code(context: grpc.ServicerContext, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """The code the handler set or aborted with, else `otherwise`."""
    # ServicerContext.code() exists since grpcio 1.38; grpc-stubs does not know it yet.
    code: grpc.StatusCode | None = getattr(context, "code", lambda: None)()
    return otherwise if code is None else code
