"""Unit tests of ``metrana.api.Client`` and ``AsyncClient`` against ``httpx.MockTransport``:
the request each method sends, retries and idempotency keys, error decoding, ingestion keys and
local credentials. (The tests against a real server live with the server.)"""

from __future__ import annotations

import asyncio
import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import metrana.api
from metrana import MetranaConfigError, MetranaInvalidMetricError
from metrana.api import (
    AsyncClient,
    Client,
    ComparisonMetricSeries,
    IngestMetric,
    MetricsApiAuthError,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiResponseError,
    RetryPolicy,
    RunHandshakeRequest,
    credentials_path,
    delete_credentials,
    load_credentials,
    save_credentials,
)
from metrana.api._routes import ROUTES, ROUTES_BY_NAME

HOST = "http://metrana.test:8765"
KEY = "mk_api_secret"
FAST = RetryPolicy(max_attempts=3, max_elapsed=30.0, base_delay=0.001, max_delay=0.002)

FOLDER = {
    "id": 3,
    "workspace_id": 1,
    "parent_id": None,
    "name": "mnist",
    "description": "",
    "path": ["mnist"],
    "created_ns": 1,
}
EXPERIMENT = {
    "id": 7,
    "workspace_id": 1,
    "folder_id": 3,
    "name": "baseline",
    "status": "running",
    "description": "",
    "metadata": {"lr": 0.1},
    "orchestration_id": None,
    "created_ns": 1,
    "updated_ns": 2,
}
AUTH = {
    "auth": {"kind": "api_key"},
    "organization": {"id": "1", "name": "me"},
    "workspace_id": 1,
    "workspace_name": "me",
    "key_kind": "api",
    "key_name": "laptop",
    "experiment_id": None,
}
HANDSHAKE = {
    "experiment_id": 7,
    "created": True,
    "resume": [{"metric_name": "loss", "scale": "ML_STEP", "labels": {}, "last_step": 4}],
}
METRIC_LIST = {
    "experiment_id": 7,
    "series": [
        {
            "metric_name": "train/loss",
            "scale": "ML_STEP",
            "labels": {"split": "a"},
            "points": [[1, 0.5, 10], [2, "nan", 11]],
        }
    ],
}
SERIES = {"experiment_id": 7, "metric_name": "loss", "metadata_key": None, "metadata_value": None}
COMPARE = {"series": [SERIES], "rows": [[1, [0.5]], [2, [None]]]}
CATALOG = {
    "metric_name": "loss",
    "scales": ["ML_STEP"],
    "label_keys": ["split"],
    "experiments": 1,
    "series": 2,
}
CATALOG_VALUES = {"metric_name": "train/loss", "label_key": "split", "values": ["a", "b"]}
INGESTION_KEY = {
    "id": 5,
    "experiment_id": 7,
    "name": "default",
    "prefix": "mik_ab",
    "created_ns": 1,
    "revoked": False,
    "expires_at_ms": 4_102_444_800_000,  # 2100: never near expiry in these tests
    "revoked_at_ms": None,
    "last_used_at_ms": None,
}
ANNOTATION = {
    "id": 2,
    "experiment_id": 7,
    "text": "lr drop",
    "step": 100,
    "timestamp_ns": 5,
    "metadata": {},
    "created_ns": 6,
}
INGEST_RESULT = {"accepted": 2, "duplicates": 0, "pacing_seconds": 0.0}

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    """A success answer in the API's envelope."""
    return httpx.Response(status, json={"data": body, "error": None}, headers=headers)


def api_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "details": f"code={code}"}}, headers=headers
    )


def key_created(secret: str) -> httpx.Response:
    return ok({"key": {**INGESTION_KEY, "name": "client"}, "secret": secret})


class Server:
    """A scripted server: answers in order (the last one repeats), every request recorded."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("host", HOST)
        return Client(KEY, transport=httpx.MockTransport(self), **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncClient:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("host", HOST)
        return AsyncClient(KEY, transport=httpx.MockTransport(self), **kwargs)


def raw_path(request: httpx.Request) -> str:
    return request.url.raw_path.decode().split("?")[0]


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


# -- one case per route: method, path, query, body, headers and the decoded answer ----------

CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], str, str, dict[str, str], Any, Any]] = [
    # name, args, kwargs, HTTP method, raw path, query, JSON body, answer
    ("auth_status", (), {}, "GET", "/auth/status", {}, None, AUTH),
    ("list_folders", (), {}, "GET", "/folders", {}, None, {"items": [FOLDER]}),
    (
        "create_folder",
        ("runs",),
        {"parent_id": 3, "description": "d"},
        "POST",
        "/folders",
        {},
        {"name": "runs", "parent_id": 3, "description": "d"},
        FOLDER,
    ),
    ("get_folder", (3,), {}, "GET", "/folders/3", {}, None, FOLDER),
    (
        "patch_folder",
        (3,),
        {"description": "x"},
        "PATCH",
        "/folders/3",
        {},
        {"description": "x"},
        FOLDER,
    ),
    ("rename_folder", (3, "new"), {}, "POST", "/folders/3/rename", {}, {"name": "new"}, FOLDER),
    ("move_folder", (3, None), {}, "POST", "/folders/3/move", {}, {"parent_id": None}, FOLDER),
    (
        "list_experiments",
        (),
        {"folder_id": 3, "status": "running"},
        "GET",
        "/experiments",
        {"folder_id": "3", "status": "running"},
        None,
        {"items": [EXPERIMENT]},
    ),
    (
        "create_experiment",
        (3, "baseline"),
        {"metadata": {"lr": 0.1}},
        "POST",
        "/experiments",
        {},
        {
            "folder_id": 3,
            "name": "baseline",
            "description": "",
            "metadata": {"lr": 0.1},
            "status": "running",
        },
        EXPERIMENT,
    ),
    ("get_experiment", (7,), {}, "GET", "/experiments/7", {}, None, EXPERIMENT),
    (
        "update_experiment_status",
        (7, "finished"),
        {},
        "POST",
        "/experiments/7/status",
        {},
        {"status": "finished"},
        EXPERIMENT,
    ),
    (
        "move_experiment",
        (7, 4),
        {},
        "POST",
        "/experiments/7/move",
        {},
        {"folder_id": 4},
        EXPERIMENT,
    ),
    (
        "run_handshake",
        (RunHandshakeRequest(project_name="p", run_name="r", orchestration_id="o"),),
        {},
        "POST",
        "/runs/handshake",
        {},
        {
            "project_name": "p",
            "run_name": "r",
            "orchestration_id": "o",
            "experiment_name": None,
            "resume_strategy": "Allow",
            "workspace_name": None,
            "metadata": {},
        },
        HANDSHAKE,
    ),
    (
        "list_metrics",
        (7,),
        {"metric_name": "train/loss", "scale": "ML_STEP", "limit": 10},
        "GET",
        "/experiments/7/metrics",
        {"metric_name": "train/loss", "scale": "ML_STEP", "limit": "10"},
        None,
        METRIC_LIST,
    ),
    (
        "compare_metrics",
        ([ComparisonMetricSeries(experiment_id=7, metric_name="loss")],),
        {"limit": 50},
        "POST",
        "/metrics/compare",
        {},
        {"series": [SERIES], "limit": 50},
        COMPARE,
    ),
    (
        "list_metric_catalog",
        (),
        {"folder_id": 3},
        "GET",
        "/metrics/catalog",
        {"folder_id": "3"},
        None,
        {"items": [CATALOG]},
    ),
    (
        "inspect_metric_catalog_values",
        ("train/loss", "split"),
        {},
        "GET",
        "/metrics/catalog/train%2Floss/values",
        {"label_key": "split"},
        None,
        CATALOG_VALUES,
    ),
    (
        "list_ingestion_keys",
        (7,),
        {},
        "GET",
        "/experiments/7/ingestion-keys",
        {},
        None,
        {"items": [INGESTION_KEY]},
    ),
    (
        "create_ingestion_key",
        (7,),
        {},
        "POST",
        "/experiments/7/ingestion-keys",
        {},
        {"name": "default"},
        {"key": INGESTION_KEY, "secret": "mik_secret"},
    ),
    ("revoke_ingestion_key", (5,), {}, "DELETE", "/ingestion-keys/5", {}, None, INGESTION_KEY),
    (
        "list_annotations",
        (7,),
        {},
        "GET",
        "/experiments/7/annotations",
        {},
        None,
        {"items": [ANNOTATION]},
    ),
]


def test_the_cases_cover_every_route_and_both_clients_have_every_method() -> None:
    # ingest and annotate use an ingestion key: tests of their own
    covered = {case[0] for case in CASES} | {"ingest_metrics", "create_annotation"}
    assert covered == set(ROUTES_BY_NAME)
    for route in ROUTES:
        assert callable(getattr(Client, route.name)), route.name
        assert asyncio.iscoroutinefunction(getattr(AsyncClient, route.name)), route.name


def check_request(
    request: httpx.Request,
    name: str,
    method: str,
    path: str,
    query: dict[str, str],
    expected_body: Any,
) -> None:
    route = ROUTES_BY_NAME[name]
    assert route.method == method
    assert request.method == method
    assert request.url.scheme == "http" and request.url.host == "metrana.test"
    assert request.url.port == 8765
    assert raw_path(request) == "/api/v1" + path
    assert dict(request.url.params) == query
    assert body(request) == expected_body
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    if expected_body is not None:
        assert request.headers["Content-Type"] == "application/json"
    key = request.headers.get("Idempotency-Key")
    if method == "GET":
        assert key is None
    else:
        assert key is not None and len(key) == 32 and int(key, 16) >= 0
    assert request.extensions["timeout"]["read"] == 10.0


def check_result(result: Any, answer: Any) -> None:
    expected = answer["items"] if set(answer) == {"items"} else answer
    assert isinstance(result, list) == (set(answer) == {"items"})  # a Page arrives as a list
    assert msgspec.to_builtins(result) == expected


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_each_method_sends_its_route(case: tuple[Any, ...]) -> None:
    name, args, kwargs, method, path, query, expected_body, answer = case
    server = Server(ok(answer))
    with server.client() as client:
        result = getattr(client, name)(*args, **kwargs)
    (request,) = server.requests
    check_request(request, name, method, path, query, expected_body)
    check_result(result, answer)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_async_client_sends_the_same_requests(case: tuple[Any, ...]) -> None:
    name, args, kwargs, method, path, query, expected_body, answer = case
    server = Server(ok(answer))

    async def main() -> Any:
        async with server.async_client() as client:
            return await getattr(client, name)(*args, **kwargs)

    result = asyncio.run(main())
    (request,) = server.requests
    check_request(request, name, method, path, query, expected_body)
    check_result(result, answer)


def test_none_query_parameters_are_left_out() -> None:
    server = Server(ok({"items": []}), ok(METRIC_LIST))
    with server.client() as client:
        assert client.list_experiments(folder_id=None, status=None) == []
        client.list_metrics(7)
    assert [str(r.url) for r in server.requests] == [
        f"{HOST}/api/v1/experiments",
        f"{HOST}/api/v1/experiments/7/metrics",
    ]


def test_path_parameters_are_quoted() -> None:
    server = Server(ok(CATALOG_VALUES))
    with server.client() as client:
        client.inspect_metric_catalog_values("a b/c?d#e", "k")
    assert raw_path(server.requests[0]) == "/api/v1/metrics/catalog/a%20b%2Fc%3Fd%23e/values"


def test_a_host_is_an_origin_a_trailing_slash_dropped_a_path_refused() -> None:
    server = Server(ok(AUTH))
    with server.client(host="https://example.org/") as client:
        assert client.host == "https://example.org"
        client.auth_status()
    assert str(server.requests[0].url) == "https://example.org/api/v1/auth/status"
    for bad in (
        "https://example.org/metrana",
        "https://example.org?x=1",
        "https://u:p@example.org",
    ):
        with pytest.raises(MetricsApiAuthError, match=r"not allowed"):
            Client(KEY, host=bad)


def test_each_write_gets_its_own_idempotency_key() -> None:
    server = Server(ok(FOLDER))
    with server.client() as client:
        client.rename_folder(3, "a")
        client.rename_folder(3, "a")
    keys = {request.headers["Idempotency-Key"] for request in server.requests}
    assert len(keys) == 2


# -- retries ----------------------------------------------------------------------------------


def test_a_503_is_retried_with_the_same_idempotency_key(sleeps: list[float]) -> None:
    server = Server(api_error(503, "unavailable", "restarting"), ok(FOLDER))
    with server.client() as client:
        folder = client.create_folder("runs")
    assert folder.name == "mnist"
    first, second = server.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.content == second.content
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= FAST.max_delay


@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
def test_transient_statuses_are_retried(status: int, sleeps: list[float]) -> None:
    server = Server(httpx.Response(status, text="busy"), ok(FOLDER))
    with server.client() as client:
        client.get_folder(3)
    assert len(server.requests) == 2


def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    server = Server(api_error(429, "rate_limited", "slow down", **{"Retry-After": "2"}), ok(AUTH))
    with server.client() as client:
        client.auth_status()
    assert sleeps and sleeps[0] >= 2.0


def test_transport_errors_are_retried(sleeps: list[float]) -> None:
    server = Server(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("hung up"),
        ok(FOLDER),
    )
    policy = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.002)
    with server.client(retry=policy) as client:
        client.move_folder(3, 1)
    assert len(server.requests) == 4
    assert len({r.headers["Idempotency-Key"] for r in server.requests}) == 1
    assert len(sleeps) == 3


def test_unreachable_after_the_budget_is_status_0(sleeps: list[float]) -> None:
    server = Server(httpx.ConnectError("connection refused"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.list_folders()
    error = caught.value
    assert error.status_code is None and error.error_code is None and error.retryable
    assert HOST in error.server_message
    assert "ConnectError" in error.server_message and "connection refused" in str(error)
    assert "3 attempts" in str(error)
    assert len(server.requests) == FAST.max_attempts
    assert len(sleeps) == FAST.max_attempts - 1


def test_the_elapsed_budget_stops_retries(sleeps: list[float]) -> None:
    server = Server(api_error(503, "unavailable", "down", **{"Retry-After": "100"}))
    policy = RetryPolicy(max_attempts=10, max_elapsed=5.0, base_delay=0.001, max_delay=0.002)
    with server.client(retry=policy) as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_folder(3)
    assert len(server.requests) == 1 and sleeps == []  # 100 s does not fit a 5 s budget
    assert caught.value.status_code == 503 and caught.value.error_code == "unavailable"


def test_a_spent_budget_on_a_status_raises_that_status(sleeps: list[float]) -> None:
    server = Server(api_error(503, "unavailable", "still restarting"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_experiment(7)
    assert caught.value.status_code == 503
    assert caught.value.error_code == "unavailable"
    assert "still restarting" in caught.value.server_message
    assert len(server.requests) == FAST.max_attempts


def test_a_non_retryable_transport_error_fails_at_once(sleeps: list[float]) -> None:
    server = Server(httpx.UnsupportedProtocol("no such scheme"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert caught.value.status_code is None and len(server.requests) == 1 and sleeps == []


def test_the_default_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    server = Server(httpx.ConnectError("refused"))
    client = Client(KEY, host=HOST, transport=httpx.MockTransport(server))
    with client, pytest.raises(MetricsApiRequestError):
        client.auth_status()
    assert len(server.requests) == 2


# -- errors -----------------------------------------------------------------------------------


def test_an_error_answer_is_decoded() -> None:
    server = Server(api_error(404, "not_found", "no folder 3"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_folder(3)
    error = caught.value
    assert (error.status_code, error.error_code, error.retryable) == (404, "not_found", False)
    assert str(error) == "HTTP 404: no folder 3: code=not_found"
    assert isinstance(error, MetricsApiError) and isinstance(error, metrana.MetranaError)
    assert len(server.requests) == 1  # a 4xx is an answer, not retried


def test_an_error_that_is_not_json_keeps_its_text() -> None:
    server = Server(httpx.Response(400, text="x" * 500))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_folder(3)
    assert caught.value.error_code is None and caught.value.status_code == 400
    assert caught.value.server_message == "x" * 500


def test_an_error_without_a_body_uses_the_reason() -> None:
    server = Server(httpx.Response(403))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert caught.value.error_code is None and caught.value.server_message == "Forbidden"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"id": 3}),
        httpx.Response(200, json={"data": {"id": 3}}),
        httpx.Response(200, json={"data": {"id": 3}, "error": "no"}),
        ok({"id": "three"}),
        ok({"items": [{"id": 1}]}),
    ],
)
def test_a_garbage_answer_is_a_response_error(answer: httpx.Response) -> None:
    server = Server(answer)
    with server.client() as client, pytest.raises(MetricsApiResponseError) as caught:
        client.list_folders() if "items" in answer.text else client.get_folder(3)
    message = str(caught.value)
    assert "list_folders" in message or "get_folder" in message
    assert len(server.requests) == 1


def test_a_closed_client_says_so() -> None:
    server = Server(ok(AUTH))
    with server.client() as client:
        pass
    with pytest.raises(MetricsApiError, match="closed"):
        client.auth_status()
    assert server.requests == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(MetricsApiAuthError):
        Client("")
    with pytest.raises(MetricsApiAuthError, match="host"):
        Client(KEY, host="metrana.test:8765")
    with pytest.raises(MetranaConfigError, match="timeout"):
        Client(KEY, timeout=0)


# -- ingestion --------------------------------------------------------------------------------


def ingest_server(*ingest_answers: httpx.Response, secrets: Iterator[str] | None = None) -> Server:
    """Mints ``mik_1``, ``mik_2``… and answers the ingest calls in order."""
    minted = secrets or iter(f"mik_{n}" for n in range(1, 100))
    answers = list(ingest_answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if raw_path(request).endswith("/ingestion-keys"):
            return key_created(next(minted))
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return Server(handle)


def test_ingest_mints_a_key_once_and_sends_points_with_it() -> None:
    server = ingest_server(ok(INGEST_RESULT))
    with server.client() as client:
        result = client.ingest_metrics(
            7,
            [
                {"metric_name": "loss", "value": float("nan"), "step": 1},
                IngestMetric(client_event_id="e2", metric_name="loss", value=math.inf, step=2),
                {"metric_name": "acc", "value": 1, "labels": {"split": "a"}, "scale": "EPISODE"},
            ],
        )
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 0.5}], sync=False)
    assert result.accepted == 2
    mint, first, second = server.requests
    assert (mint.method, raw_path(mint)) == ("POST", "/api/v1/experiments/7/ingestion-keys")
    assert body(mint) == {"name": "client"} and bearer(mint) == KEY
    assert (first.method, raw_path(first)) == ("POST", "/api/v1/experiments/7/metrics")
    assert bearer(first) == bearer(second) == "mik_1"
    assert "Idempotency-Key" in first.headers
    assert first.extensions["timeout"]["read"] == 60.0  # ingest_timeout
    sent = body(first)
    assert sent["sync"] is True and body(second)["sync"] is False
    nan, inf, acc = sent["metrics"]
    assert nan["value"] == "nan" and nan["step"] == 1 and len(nan["client_event_id"]) == 32
    assert inf == {
        "client_event_id": "e2",
        "metric_name": "loss",
        "value": "inf",
        "step": 2,
        "scale": "ML_STEP",
        "labels": {},
        "timestamp_ns": None,
    }
    assert acc["labels"] == {"split": "a"} and acc["scale"] == "EPISODE" and acc["value"] == 1
    assert body(second)["metrics"][0]["client_event_id"] != nan["client_event_id"]


def test_annotations_are_sent_with_the_cached_ingestion_key() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if raw_path(request).endswith("/ingestion-keys"):
            return key_created("mik_1")
        return ok(INGEST_RESULT) if raw_path(request).endswith("/metrics") else ok(ANNOTATION)

    server = Server(handle)
    with server.client() as client:
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
        annotation = client.create_annotation(7, "lr drop", step=100)
    assert annotation.text == ANNOTATION["text"]
    mint, _, annotate = server.requests
    assert raw_path(mint).endswith("/ingestion-keys")
    assert (annotate.method, raw_path(annotate)) == ("POST", "/api/v1/experiments/7/annotations")
    assert bearer(annotate) == "mik_1"
    assert body(annotate) == {"text": "lr drop", "step": 100, "timestamp_ns": None, "metadata": {}}


def test_keys_are_cached_per_experiment_and_can_be_forgotten() -> None:
    server = ingest_server(ok(INGEST_RESULT))
    point = [{"metric_name": "loss", "value": 1.0}]
    with server.client() as client:
        client.ingest_metrics(7, point)
        client.ingest_metrics(8, point)
        client.ingest_metrics(7, point)
        client.forget_ingestion_credential(7)
        client.ingest_metrics(7, point)
    paths = [raw_path(r).rsplit("/", 1)[1] for r in server.requests]
    assert paths == ["ingestion-keys", "metrics"] * 2 + ["metrics", "ingestion-keys", "metrics"]
    assert [bearer(r) for r in server.requests if raw_path(r).endswith("metrics")] == [
        "mik_1",
        "mik_2",
        "mik_1",
        "mik_3",
    ]


def test_a_401_on_ingest_mints_a_new_key_once() -> None:
    server = ingest_server(api_error(401, "unauthorized", "key revoked"), ok(INGEST_RESULT))
    with server.client() as client:
        assert client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}]).accepted == 2
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 2.0}])
    ingests = [r for r in server.requests if raw_path(r).endswith("/metrics")]
    assert [bearer(r) for r in ingests] == ["mik_1", "mik_2", "mik_2"]
    assert body(ingests[0]) == body(ingests[1])


def test_a_second_401_is_raised() -> None:
    server = ingest_server(api_error(401, "unauthorized", "no ingestion for you"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
    assert caught.value.status_code == 401 and caught.value.error_code == "unauthorized"
    assert len(server.requests) == 4  # mint, ingest, mint, ingest


def test_other_ingest_errors_keep_the_key() -> None:
    server = ingest_server(api_error(404, "not_found", "no experiment 7"), ok(INGEST_RESULT))
    with server.client() as client:
        with pytest.raises(MetricsApiRequestError):
            client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
    assert len(server.requests) == 3


def test_ingest_waits_for_the_servers_pacing_hint(sleeps: list[float]) -> None:
    server = ingest_server(ok({**INGEST_RESULT, "pacing_seconds": 5.0}))
    with server.client() as client:
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
        assert sleeps == []
        client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
    assert len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0


@pytest.mark.parametrize(
    "metric",
    [
        {"value": 1.0},
        {"metric_name": "loss", "value": [1]},
        {"metric_name": "l", "value": 1.0, "x": 1},
    ],
)
def test_an_invalid_metric_mapping_is_refused_before_sending(metric: dict[str, Any]) -> None:
    server = ingest_server(ok(INGEST_RESULT))
    with server.client() as client, pytest.raises(MetranaInvalidMetricError):
        client.ingest_metrics(7, [metric])
    assert server.requests == []


# -- local credentials ------------------------------------------------------------------------


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    monkeypatch.setenv("METRANA_CONFIG_DIR", str(directory))
    return directory


def test_credentials_are_saved_private_and_read_back(config_dir: Path) -> None:
    path = save_credentials("http://metrana.test:9000/", "mk_local")
    assert path == credentials_path() == config_dir / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved.pop("loginAt") / 1000 == pytest.approx(time.time(), abs=60)
    assert saved == {"apiKey": "mk_local", "host": "http://metrana.test:9000", "orgId": None}
    credentials = load_credentials()
    assert (credentials.host, credentials.api_key) == ("http://metrana.test:9000", "mk_local")
    assert "mk_local" not in repr(credentials)
    save_credentials("https://other.test", "mk_two")  # replaced, no temporary left behind
    assert load_credentials().api_key == "mk_two"
    assert sorted(p.name for p in config_dir.iterdir() if not p.name.endswith(".lock")) == [
        "auth.json"
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_local_client_uses_the_saved_host_and_key(config_dir: Path) -> None:
    save_credentials("http://saved.test:9000", "mk_local")
    server = Server(ok(AUTH))
    with Client("local", transport=httpx.MockTransport(server), retry=FAST) as client:
        assert client.host == "http://saved.test:9000"
        client.auth_status()
    with Client("local", host=HOST, transport=httpx.MockTransport(server)) as client:
        client.auth_status()
    first, second = server.requests
    assert str(first.url) == "http://saved.test:9000/api/v1/auth/status"
    assert str(second.url) == f"{HOST}/api/v1/auth/status"
    assert bearer(first) == bearer(second) == "mk_local"


def test_missing_credentials_say_how_to_log_in(config_dir: Path) -> None:
    with pytest.raises(MetricsApiAuthError, match=r"metrana login --host URL --api-key KEY"):
        Client("local")
    config_dir.mkdir()
    (config_dir / "auth.json").write_text('{"host": "http://x.test"}')
    with pytest.raises(MetricsApiAuthError, match=r"metrana login --host URL --api-key KEY"):
        load_credentials()
    (config_dir / "auth.json").write_text("not json")
    with pytest.raises(MetricsApiAuthError, match=r"metrana login"):
        AsyncClient("local")


def test_logout_deletes_the_credentials(config_dir: Path) -> None:
    assert delete_credentials() is False
    save_credentials(HOST, "mk_local")
    assert delete_credentials() is True
    assert not credentials_path().exists()


def test_saving_checks_host_and_key(config_dir: Path) -> None:
    with pytest.raises(MetranaConfigError):
        save_credentials("ftp://x", "k")
    with pytest.raises(MetricsApiAuthError):
        save_credentials(HOST, " ")
    assert not credentials_path().exists()


def test_the_config_dir_follows_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials_path() == tmp_path / "xdg" / "metrana" / "auth.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert credentials_path() == tmp_path / "home" / ".config" / "metrana" / "auth.json"
    monkeypatch.setenv("METRANA_CONFIG_DIR", str(tmp_path / "explicit"))
    assert credentials_path() == tmp_path / "explicit" / "auth.json"


def test_the_host_falls_back_to_the_environment_then_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Client(KEY) as client:
        assert client.host == "http://127.0.0.1:8765"
    monkeypatch.setenv("METRANA_HOST", "https://env.test/")
    with Client(KEY) as client:
        assert client.host == "https://env.test"
    with Client(KEY, host="http://arg.test") as client:
        assert client.host == "http://arg.test"


# -- the async client -------------------------------------------------------------------------


def test_async_retries_keep_the_idempotency_key() -> None:
    server = Server(api_error(503, "unavailable", "restarting"), ok(FOLDER))

    async def main() -> None:
        async with server.async_client() as client:
            await client.create_folder("runs")

    asyncio.run(main())
    first, second = server.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_async_errors_and_ingestion_keys() -> None:
    server = ingest_server(api_error(401, "unauthorized", "revoked"), ok(INGEST_RESULT))
    garbage = Server(httpx.Response(200, json={"nope": 1}))
    failing = Server(api_error(409, "conflict", "name taken"))

    async def main() -> None:
        async with server.async_client() as client:
            result = await client.ingest_metrics(7, [{"metric_name": "loss", "value": 1.0}])
            assert result.accepted == 2
        async with garbage.async_client() as client:
            with pytest.raises(MetricsApiResponseError, match="auth_status"):
                await client.auth_status()
        async with failing.async_client() as client:
            with pytest.raises(MetricsApiRequestError) as caught:
                await client.create_folder("runs")
            assert (caught.value.status_code, caught.value.error_code) == (409, "conflict")
        client = failing.async_client()
        await client.aclose()
        with pytest.raises(MetricsApiError, match="closed"):
            await client.auth_status()

    asyncio.run(main())
    assert [bearer(r) for r in server.requests] == [KEY, "mik_1", KEY, "mik_2"]


def test_async_unreachable_is_status_0() -> None:
    server = Server(httpx.ConnectError("refused"))

    async def main() -> MetricsApiRequestError:
        async with server.async_client() as client:
            try:
                await client.list_folders()
            except MetricsApiRequestError as error:
                return error
        raise AssertionError("no error")

    error = asyncio.run(main())
    assert error.status_code is None and HOST in error.server_message
    assert len(server.requests) == FAST.max_attempts


# -- the public surface -----------------------------------------------------------------------


def test_exported_names() -> None:
    assert set(metrana.api.__all__) == {
        "Annotation",
        "AsyncClient",
        "AuthStatus",
        "Client",
        "CompareResponse",
        "CompareRow",
        "ComparisonMetricSeries",
        "Credentials",
        "Experiment",
        "ExperimentStatus",
        "Folder",
        "IngestMetric",
        "IngestResult",
        "IngestionKey",
        "IngestionKeyCreated",
        "MetricCatalogEntry",
        "MetricCatalogValues",
        "MetricList",
        "MetricPoint",
        "MetricSeries",
        "MetricsApiAuthError",
        "MetricsApiError",
        "MetricsApiRequestError",
        "MetricsApiResponseError",
        "PointValue",
        "RetryPolicy",
        "RunHandshakeRequest",
        "RunHandshakeResponse",
        "Scale",
        "SeriesLastStep",
        "credentials_path",
        "decode_value",
        "delete_credentials",
        "encode_value",
        "load_credentials",
        "save_credentials",
    }
    for name in metrana.api.__all__:
        assert hasattr(metrana.api, name), name
    assert os.fspath(credentials_path()).endswith("auth.json")


def test_a_plain_http_client_needs_no_tls_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metrana.api._transport import needs_tls

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert not needs_tls("http://127.0.0.1:8765")
    assert not needs_tls("HTTP://metrana.internal")
    assert needs_tls("https://metrana.example.com")
    monkeypatch.setenv("https_proxy", "https://proxy.internal:3128")
    assert needs_tls("http://127.0.0.1:8765")


# -- the Syvain API's conventions ----------------------------------------------------------


def test_an_answer_that_is_not_json_is_a_retryable_request_error_not_retried() -> None:
    server = Server(httpx.Response(200, text="<html>proxy</html>"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert caught.value.retryable and caught.value.status_code is None
    assert str(caught.value).startswith("Metrics API request failed for auth_status")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(408, None), (425, None), (429, None), (409, "idempotency_key_in_progress")],
)
def test_transient_answers_are_retried_with_the_same_key(
    sleeps: list[float], status: int, code: str | None
) -> None:
    first = api_error(status, code, "later") if code else httpx.Response(status)
    server = Server(first, ok(FOLDER))
    with server.client() as client:
        assert client.create_folder("runs").name == "mnist"
    keys = [request.headers["Idempotency-Key"] for request in server.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_a_plain_409_is_an_answer_not_retried(sleeps: list[float]) -> None:
    server = Server(api_error(409, "conflict", "name taken"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.create_folder("runs")
    assert (caught.value.status_code, caught.value.retryable, len(server.requests)) == (
        409,
        False,
        1,
    )


def test_an_error_as_plain_text_in_the_envelope_is_read(sleeps: list[float]) -> None:
    server = Server(httpx.Response(400, json={"error": "bad things"}))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert str(caught.value) == "HTTP 400: bad things"
    assert caught.value.error_code is None


def test_local_credentials_in_the_syvain_format_and_the_older_one(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "auth.json"
    path.write_text(json.dumps({"apiKey": "mk_syvain", "host": "http://s.test", "orgId": "7"}))
    credentials = load_credentials()
    assert (credentials.api_key, credentials.host, credentials.org_id) == (
        "mk_syvain",
        "http://s.test",
        "7",
    )
    path.write_text(json.dumps({"host": "http://old.test", "api_key": "mk_old"}))
    assert (load_credentials().api_key, load_credentials().host) == ("mk_old", "http://old.test")
    for bad, says in (
        ("[1]", "invalid credentials"),
        ("{", "not JSON"),
        ('{"host": "h"}', "invalid credentials"),
    ):
        path.write_text(bad)
        with pytest.raises(MetricsApiAuthError, match=says):
            load_credentials()
    monkeypatch.delenv("METRANA_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials_path() == tmp_path / "xdg" / "metrana" / "auth.json"
