"""A loopback HTTP proxy that injects faults on command, for tests of delivery behaviour.

Put it in front of a real server and point the client or dispatcher at ``proxy.url``::

    with FaultProxy(server.url) as proxy:
        proxy.set_fault(Fault.status_code(503))   # every request answered 503
        proxy.set_fault(Fault.status_code(429, retry_after=1))
        proxy.set_fault(Fault.stall())            # hold requests until the fault changes
        proxy.set_fault(Fault.slow(0.5))          # forward after 0.5 s
        proxy.set_fault(Fault.drop())             # read the request, close without answering
        proxy.set_fault(Fault.drop_response())    # forward, then close before answering
        proxy.set_fault(Fault.refuse())           # stop listening: connections are refused
        proxy.set_fault(None)                     # forward faithfully
        proxy.requests                            # (monotonic time, method, path, status)

Faults may be limited to a number of requests (``times=``) and to a path prefix, and chained:
``Fault.status_code(413, times=1).followed_by(Fault.status_code(503))``.

Given several upstreams (``FaultProxy([replica_a, replica_b])``) it is also a round-robin load
balancer, as nginx or HAProxy in front of server replicas: each request goes to the next
upstream; one that refuses the connection is skipped (the request was not sent, so trying the
next one is safe, as nginx's ``proxy_next_upstream error``); one that fails after the request
was sent answers 502 (the client retries). Each record names its upstream in
``extra["upstream"]``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

__all__ = ["Fault", "FaultProxy", "RecordedRequest"]

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    """What the proxy does to the requests it receives."""

    kind: str  # "status", "stall", "slow", "drop", "drop_response", "refuse", "forward"
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    times: int | None = None  # None: every request
    path_prefix: str = ""
    body: bytes = b""
    then: Fault | None = None  # what follows once ``times`` requests had this one

    def followed_by(self, fault: Fault) -> Fault:
        """This fault for its ``times`` requests, then ``fault``."""
        self.then = fault
        return self

    @classmethod
    def status_code(
        cls, status: int, retry_after: float | None = None, times: int | None = None,
        path_prefix: str = "", body: bytes = b"",
    ) -> Fault:  # fmt: skip
        """Answer ``status`` (with ``Retry-After`` when given) instead of forwarding."""
        return cls("status", status=status, retry_after=retry_after, times=times,
                   path_prefix=path_prefix, body=body)  # fmt: skip

    @classmethod
    def forward(cls, times: int | None = None, path_prefix: str = "") -> Fault:
        """Forward faithfully: a step in a chain of faults (see :meth:`followed_by`)."""
        return cls("forward", times=times, path_prefix=path_prefix)

    @classmethod
    def stall(cls, times: int | None = None, path_prefix: str = "") -> Fault:
        """Hold each request until the fault is changed (or the proxy stops)."""
        return cls("stall", times=times, path_prefix=path_prefix)

    @classmethod
    def slow(cls, delay: float, times: int | None = None, path_prefix: str = "") -> Fault:
        """Forward each request after ``delay`` seconds."""
        return cls("slow", delay=delay, times=times, path_prefix=path_prefix)

    @classmethod
    def drop(cls, times: int | None = None, path_prefix: str = "") -> Fault:
        """Read the request, then close the connection without an answer (not forwarded)."""
        return cls("drop", times=times, path_prefix=path_prefix)

    @classmethod
    def drop_response(cls, times: int | None = None, path_prefix: str = "") -> Fault:
        """Forward the request (the server acts), then close before relaying the answer."""
        return cls("drop_response", times=times, path_prefix=path_prefix)

    @classmethod
    def refuse(cls) -> Fault:
        """Close the listening socket: new connections are refused until the fault changes."""
        return cls("refuse")


@dataclass
class RecordedRequest:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    status: int  # what the client got; 0 when the connection was dropped or stalled
    fault: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class _Unreachable(Exception):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.upstream = upstream


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up on a faulted request is expected here, not news."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the body of each answer on a
    # kept-alive connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        arrived = time.monotonic()
        fault = proxy._take_fault(self.path)
        kind = fault.kind if fault else ""
        if fault is not None and fault.kind == "stall":
            proxy._released.wait(60)
            fault = None
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind in ("drop", "refuse"):
            # refuse: new connections are refused; one kept alive from before is cut
            proxy._record(arrived, self.command, self.path, 0, kind)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "status":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            payload = fault.body or (
                b'{"error": {"code": "injected", "message": "fault injected by the test proxy"}}'
            )
            proxy._record(arrived, self.command, self.path, fault.status, kind)
            self._answer(fault.status, headers, payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            response, upstream = proxy._forward(self.command, self.path, body, headers)
        except _Unreachable as error:
            proxy._record(arrived, self.command, self.path, 502, kind, error.upstream)
            self._answer(502, {"Content-Type": "text/plain"}, b"upstream unreachable")
            return
        if fault is not None and fault.kind == "drop_response":
            proxy._record(arrived, self.command, self.path, 0, kind, upstream)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        out_headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in HOP_HEADERS | {"content-encoding"}
        }
        # Recorded before answering, so a client that got its answer sees the record.
        proxy._record(arrived, self.command, self.path, response.status_code, kind, upstream)
        self._answer(response.status_code, out_headers, response.content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle


class FaultProxy:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of ``upstream`` (one URL, or several
    taken in turn)."""

    def __init__(self, upstream: str | Sequence[str], port: int = 0) -> None:
        urls = [upstream] if isinstance(upstream, str) else list(upstream)
        if not urls:
            raise ValueError("FaultProxy needs at least one upstream")
        self.upstreams = [url.rstrip("/") for url in urls]
        self.upstream = self.upstreams[0]
        self._clients = [httpx.Client(base_url=url, timeout=60.0) for url in self.upstreams]
        self._turn = 0
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._released = threading.Event()
        self.requests: list[RecordedRequest] = []
        # requests sent to each upstream and not answered yet (say, held by a frozen replica)
        self.in_flight: dict[str, int] = dict.fromkeys(self.upstreams, 0)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set_fault(self, fault: Fault | None) -> None:
        """Change the fault; ``None`` forwards faithfully. Stalled requests are released."""
        with self._lock:
            previous = self._fault
            self._fault = fault
        self._released.set()
        self._released = threading.Event()
        if fault is not None and fault.kind == "refuse":
            self._stop_listening()
        elif (previous is not None and previous.kind == "refuse") or self._server is None:
            self._listen()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self._fault
            if fault is None or not path.startswith(fault.path_prefix):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = fault.then
            return fault

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[httpx.Response, str]:
        """The answer of the next upstream in turn (skipping those that refuse to connect),
        and its URL; _Unreachable when none answers."""
        with self._lock:
            first = self._turn
            self._turn = (self._turn + 1) % len(self._clients)
        upstream = self.upstreams[first]
        for offset in range(len(self._clients)):
            index = (first + offset) % len(self._clients)
            upstream = self.upstreams[index]
            with self._lock:
                self.in_flight[upstream] += 1
            try:
                response = self._clients[index].request(method, path, content=body, headers=headers)
            except httpx.ConnectError:
                continue  # not sent: the next upstream may take it
            except httpx.HTTPError:
                raise _Unreachable(upstream) from None  # sent: the client decides to retry
            finally:
                with self._lock:
                    self.in_flight[upstream] -= 1
            return response, upstream
        raise _Unreachable(upstream)

    def _record(
        self, at: float, method: str, path: str, status: int, fault: str, upstream: str = ""
    ) -> None:
        extra = {"upstream": upstream} if upstream else {}
        with self._lock:
            self.requests.append(RecordedRequest(at, method, path, status, fault, extra))

    def close(self) -> None:
        """Release stalled requests, stop listening and close the upstream connections."""
        self._released.set()
        self._stop_listening()
        for client in self._clients:
            client.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
