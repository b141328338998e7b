"""The dispatcher's HTTP target over ``httpx.MockTransport``: the one retry loop's decisions
(413 halves, a refused ingestion key minted again once, 429 pacing shared by every sender,
give-back on failure, a stop ending the backoff) without a server or a process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from metrana._config import resolve_config
from metrana.api import _types as t
from metrana.api._routes import API_PREFIX, INGEST_PATH
from metrana.dispatcher.targets import DeliveryFailure, RejectedBatch
from metrana.dispatcher.targets._http import HttpTarget
from metrana.proto import IngestResponse
from metrana.proto._codec import decode_batch
from metrana.storage import SeriesColumns, SeriesKey

T0 = 1_700_000_000_000_000_000
INGEST = API_PREFIX + INGEST_PATH
Answer = Callable[[httpx.Request], httpx.Response]


def _batch(n: int = 10) -> dict[SeriesKey, SeriesColumns]:
    return {
        ("loss", "ML_STEP", "{}"): SeriesColumns(
            list(range(n)), [i / 3 for i in range(n)], [T0 + i for i in range(n)]
        )
    }


def stored(request: httpx.Request) -> httpx.Response:
    """200 with every point of the batch accepted."""
    points = sum(len(c.steps) for c in decode_batch(request.content).series.values())
    return httpx.Response(200, content=IngestResponse(accepted=points).SerializeToString())


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": f"scripted {code}", "details": f"code=http_{code}"}}
        return httpx.Response(code, json=body, headers=headers)

    return answer


def enveloped(data: msgspec.Struct) -> httpx.Response:
    """A JSON answer in the API's success envelope."""
    return httpx.Response(200, content=msgspec.json.encode({"data": data, "error": None}))


def _key(key_id: int, revoked: bool = False) -> t.IngestionKey:
    """A dispatcher's ingestion key that expires in 2100."""
    return t.IngestionKey(
        id=str(key_id),
        experiment_id="7",
        name="dispatcher",
        created_at_ms=0,
        expires_at_ms=4_102_444_800_000,
        revoked_at_ms=1 if revoked else None,
        last_used_at_ms=None,
        prefix="mti_",
    )


EXPERIMENT = t.Experiment(
    id="7", org_id="1", folder=None, url="http://metrana.invalid:8765/experiments/7",
    slug="unit", description="", metadata={}, status="running", error_name=None,
    error_detail=None, created_at_ms=0, updated_at_ms=0, started_at_ms=0, done_at_ms=None,
    last_heartbeat_at_ms=None, last_event_at_ms=None,
)  # fmt: skip


class FakeServer:
    """Answers the handshake and key minting; ingest answers come from ``script`` in order
    (then ``stored``)."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.ingests: list[tuple[float, httpx.Request, int]] = []
        self.keys_minted = 0
        self.lock = threading.Lock()
        self.answered = threading.Event()  # set on each ingest answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == API_PREFIX + "/runs/handshake":
            answer = t.RunHandshakeResponse(experiment=EXPERIMENT, created=True, resume=[])
            return enveloped(answer)
        if path.endswith("/ingestion-keys"):
            with self.lock:
                self.keys_minted += 1
                n = self.keys_minted
            created = t.IngestionKeyCreateResponse(key=_key(n), token=f"mti_secret{n}")
            return enveloped(created)
        if "/ingestion-keys/" in path:  # revoke at close
            return enveloped(t.IngestionKeyResponse(_key(1, revoked=True)))
        assert path == INGEST, path
        with self.lock:
            answer_with = self.script.pop(0) if self.script else stored
        response = answer_with(request)
        with self.lock:
            self.ingests.append((time.monotonic(), request, response.status_code))
        self.answered.set()
        return response

    def statuses(self) -> list[int]:
        return [code for _, _, code in self.ingests]


@pytest.fixture
def make_target(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HttpTarget]]:
    made: list[HttpTarget] = []

    def make(
        server: FakeServer,
        attempts: int = 3,
        elapsed: float = 30.0,
        stop: threading.Event | None = None,
    ) -> HttpTarget:
        monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", str(attempts))
        monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", str(elapsed))
        config = resolve_config(
            api_key="mtr_test",
            workspace_name="default",
            project_name="proj",
            run_name="unit",
            ingestion_url="http://metrana.invalid:8765",
        )
        target = HttpTarget(config, transport=httpx.MockTransport(server), stop=stop)
        target.open_run(config)
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


def test_a_413_sends_the_batch_in_halves(make_target: Callable[..., HttpTarget]) -> None:
    server = FakeServer(status(413))
    result = make_target(server).submit(_batch(10)).result(timeout=10)
    assert (result.accepted, result.rejected) == (10, 0)
    assert server.statuses() == [413, 200, 200]
    halves = [decode_batch(request.content) for _, request, _ in server.ingests[1:]]
    assert [h.series[("loss", "ML_STEP", "{}")].steps for h in halves] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
    ]
    # each half is a batch of its own, under a new sequence number
    assert len({(h.producer_id, h.sequence) for h in halves}) == 2


def test_a_single_point_over_the_limit_is_rejected_not_retried(
    make_target: Callable[..., HttpTarget],
) -> None:
    server = FakeServer(status(413))
    error = make_target(server).submit(_batch(1)).exception(timeout=10)
    assert type(error) is RejectedBatch
    assert error.status == 413
    assert "a single point is larger than the server's size limit" in str(error)
    assert server.statuses() == [413]


def test_a_refused_ingestion_key_is_minted_again_once(
    make_target: Callable[..., HttpTarget],
) -> None:
    server = FakeServer(status(401))
    target = make_target(server)
    assert target.submit(_batch()).result(timeout=10).accepted == 10
    assert server.keys_minted == 2
    assert server.statuses() == [401, 200]
    authorization = [request.headers["Authorization"] for _, request, _ in server.ingests]
    assert authorization == ["Bearer mti_secret1", "Bearer mti_secret2"]


def test_a_key_refused_twice_gives_the_batch_back(make_target: Callable[..., HttpTarget]) -> None:
    server = FakeServer(status(401), status(401))
    error = make_target(server).submit(_batch()).exception(timeout=10)
    assert type(error) is DeliveryFailure
    assert str(error) == "the server refused delivery (401): scripted 401"
    assert error.undelivered is not None and error.undelivered() == _batch()
    assert server.keys_minted == 2


def test_a_400_rejects_the_batch_for_good(make_target: Callable[..., HttpTarget]) -> None:
    server = FakeServer(status(400))
    error = make_target(server).submit(_batch()).exception(timeout=10)
    assert type(error) is RejectedBatch
    assert str(error) == "the server rejected a batch (400): scripted 400"
    assert server.statuses() == [400]


def test_retry_after_paces_every_sender(make_target: Callable[..., HttpTarget]) -> None:
    server = FakeServer(status(429, {"Retry-After": "0.3"}))
    target = make_target(server)
    first = target.submit(_batch())
    assert server.answered.wait(10)  # the 429 is in
    second = target.submit(_batch())  # another batch, sent during the pause
    assert first.result(timeout=10).accepted == 10
    assert second.result(timeout=10).accepted == 10
    (refused_at, _, _), *later = server.ingests
    assert len(later) == 2 and all(at - refused_at >= 0.3 for at, _, _ in later)
    assert server.statuses() == [429, 200, 200]


def test_a_server_that_keeps_failing_gives_back_the_whole_batch(
    make_target: Callable[..., HttpTarget],
) -> None:
    server = FakeServer(status(503), status(503), status(503))
    error = make_target(server, attempts=3).submit(_batch()).exception(timeout=10)
    assert type(error) is DeliveryFailure
    assert str(error).startswith("the server kept failing (503): scripted 503 (gave up after 3")
    assert error.undelivered is not None and error.undelivered() == _batch()
    assert server.statuses() == [503, 503, 503]


def test_an_unreachable_server_is_retried_then_given_back(
    make_target: Callable[..., HttpTarget],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    server = FakeServer(refuse, refuse)
    error = make_target(server, attempts=2).submit(_batch()).exception(timeout=10)
    assert type(error) is DeliveryFailure
    assert str(error).startswith(
        "cannot reach http://metrana.invalid:8765: ConnectError: connection refused "
        "(gave up after 2 attempts"
    )
    assert error.undelivered is not None and error.undelivered() == _batch()


def test_the_server_answering_garbage_gives_the_batch_back(
    make_target: Callable[..., HttpTarget],
) -> None:
    server = FakeServer(lambda request: httpx.Response(200, content=b"\xff\x00 not protobuf"))
    error = make_target(server).submit(_batch()).exception(timeout=10)
    assert type(error) is DeliveryFailure
    assert str(error).startswith("the server answered garbage")
    assert error.undelivered is not None and error.undelivered() == _batch()


def test_a_stop_ends_the_backoff_at_once(make_target: Callable[..., HttpTarget]) -> None:
    stop = threading.Event()
    server = FakeServer(*[status(503, {"Retry-After": "30"})] * 5)
    target = make_target(server, attempts=5, elapsed=300, stop=stop)
    future = target.submit(_batch())
    assert server.answered.wait(10)
    assert server.statuses() == [503]
    stopped_at = time.monotonic()
    stop.set()
    error = future.exception(timeout=5)
    assert time.monotonic() - stopped_at < 2
    assert type(error) is DeliveryFailure
    assert str(error) == "stopping: stopped while waiting 30.0 s to retry"
    assert error.undelivered is not None and error.undelivered() == _batch()


def test_a_server_that_stores_fewer_points_than_sent_keeps_the_batch(
    make_target: Callable[..., HttpTarget],
) -> None:
    """An older server that ignores a field of the batch (bulk runs) answers 200 with fewer
    points: the batch is given back, not committed as delivered."""

    def partial(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=IngestResponse(accepted=3).SerializeToString())

    server = FakeServer(partial)
    error = make_target(server).submit(_batch(10)).exception(timeout=10)
    assert type(error) is DeliveryFailure
    assert str(error) == (
        "the server stored 3 and recognised 0 of the 10 points of a batch: it does not read "
        "all of this Metrana's batch (an older server?); upgrade the server to this version"
    )
    assert error.undelivered is not None and error.undelivered() == _batch(10)
