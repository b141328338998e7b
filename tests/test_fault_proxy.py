"""The fault-injecting proxy used by the delivery tests does what each fault says."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from metrana.testing import Fault, FaultProxy


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Echo.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    _Echo.hits = []
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(
        target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as fault_proxy:
        yield fault_proxy
    upstream.shutdown()
    upstream.server_close()


def test_forwards_faithfully(proxy: FaultProxy) -> None:
    response = httpx.post(proxy.url + "/a", content=b"hello")
    assert (response.status_code, response.content) == (200, b"hello")
    assert _Echo.hits == ["/a"]


def test_status_with_retry_after_for_a_number_of_requests(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.status_code(429, retry_after=1, times=2))
    answers = [httpx.post(proxy.url + "/x", content=b"b") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert _Echo.hits == ["/x"]  # faulted requests never reached the server


def test_drop_reads_the_request_and_closes(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.drop(times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(proxy.url + "/d", content=b"b")
    assert _Echo.hits == []


def test_drop_response_acts_then_closes(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.drop_response(times=1))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(proxy.url + "/d", content=b"b")
    assert _Echo.hits == ["/d"]  # the server did act


def test_stall_holds_until_released(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.stall())
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(httpx.post(proxy.url + "/s", timeout=30).status_code)
    )
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and result == []
    proxy.set_fault(None)
    thread.join(10)
    assert result == [200]


def test_refuse_then_accept_again(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.refuse())
    with pytest.raises(httpx.ConnectError):
        httpx.post(proxy.url + "/r", timeout=2)
    proxy.set_fault(None)
    assert httpx.post(proxy.url + "/r").status_code == 200


def test_records_arrival_times(proxy: FaultProxy) -> None:
    proxy.set_fault(Fault.slow(0.2, times=1))
    started = time.monotonic()
    httpx.post(proxy.url + "/t")
    assert time.monotonic() - started >= 0.2
    assert [(r.path, r.status, r.fault) for r in proxy.requests] == [("/t", 200, "slow")]
    assert proxy.requests[0].at >= started
