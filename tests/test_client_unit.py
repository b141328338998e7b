"""Unit tests of ``metrana.Client`` and ``AsyncClient`` against ``httpx.MockTransport``: the
surface (the Syvain client's signatures), the request each method sends, the envelope and
error decoding, and retries. Ingestion keys and argument checks are in
``test_client_ingest_unit.py``, credentials and hosts in ``test_client_auth_unit.py``; the real
server is in ``test_conformance.py``."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from _api_mock import (
    ANNOTATION,
    AUTH,
    EXPERIMENT,
    FAST,
    FOLDER,
    HOST,
    IDEMPOTENCY_KEY,
    INGESTION_KEY,
    KEY,
    ROW,
    Server,
    api_error,
    body,
    ok,
    raw_path,
)
from syvain_metrics_api_client import SyvainMetricsApiClient

import metrana
import metrana.api
from metrana.api import (
    AsyncClient,
    Client,
    ComparisonMetricSeries,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiResponseError,
    RetryPolicy,
    RunHandshakeRequest,
)
from metrana.api._routes import ROUTES_BY_NAME

Servers = Callable[..., Server]


@pytest.fixture
def serve(flavor: str) -> Servers:
    """Scripted servers whose ``client()`` is a Client, then (second run) an AsyncClient."""
    return lambda *answers: Server(*answers, flavor=flavor)


# -- the surface: the Syvain client's, exactly ------------------------------------------------

# What Metrana leaves out of the Syvain client's surface, each documented in rest-client.md.
NOT_PROVIDED = {"from_local_dev"}  # Syvain's development service
NOT_PROVIDED_ARGUMENTS = {"request"}  # a niquests-like callable: Metrana takes `transport`


def _syvain_methods() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(SyvainMetricsApiClient)
        if callable(member) and not name.startswith("_")
    ] + ["__init__"]


def _parameters(function: Any) -> dict[str, tuple[Any, Any]]:
    """Each parameter's kind and default (an "unset" default of either package as UNSET)."""
    found = {}
    for parameter in inspect.signature(function).parameters.values():
        default = parameter.default
        if type(default).__name__ in ("_Unset", "UnsetType"):
            default = "UNSET"
        found[parameter.name] = (parameter.kind, default)
    return found


@pytest.mark.parametrize("method", _syvain_methods())
@pytest.mark.parametrize("client_class", [Client, AsyncClient])
def test_every_method_has_the_syvain_signature(method: str, client_class: type) -> None:
    if method in NOT_PROVIDED:
        assert not hasattr(client_class, method)
        return
    theirs = _parameters(getattr(SyvainMetricsApiClient, method))
    ours = _parameters(getattr(client_class, method))
    for name in NOT_PROVIDED_ARGUMENTS:
        theirs.pop(name, None)
    if "options" in ours:  # from_api_key/from_local pass the constructor's other arguments
        assert ours.pop("options")[0] is inspect.Parameter.VAR_KEYWORD
    assert {k: v for k, v in ours.items() if k in theirs} == theirs
    extra = set(ours) - set(theirs)
    assert extra <= {"retry", "transport"}, extra  # Metrana's, keyword-only, after Syvain's
    assert list(ours)[: len(theirs)] == list(theirs)
    sync = method in ("forget_ingestion_credential", "__init__", "from_api_key", "from_local")
    assert inspect.iscoroutinefunction(getattr(client_class, method)) == (
        client_class is AsyncClient and not sync
    )


def test_the_client_exposes_the_syvain_attributes() -> None:
    client = Client(f"  {KEY} ", host=HOST + "/", timeout=3.0, ingest_timeout=4.0)
    with client:
        assert (client.api_key, client.host, client.timeout, client.ingest_timeout) == (
            KEY,
            HOST,
            3.0,
            4.0,
        )
        assert (client.org_id, client.login_at, client.auth_source) == (None, None, "api_key")
        assert client.ingestion_key_name == "SDK ingestion key"
        assert repr(client) == f"Client(host={HOST!r})" and KEY not in repr(client)
    for built in (Client.from_api_key(KEY, host=HOST), AsyncClient.from_api_key(KEY, host=HOST)):
        assert (type(built).__name__, built.api_key, built.host) in {
            ("Client", KEY, HOST),
            ("AsyncClient", KEY, HOST),
        }


def test_exported_names() -> None:
    assert set(metrana.api.__all__) == {
        "Annotation",
        "AnnotationsResponse",
        "AsyncClient",
        "AuthStatusResponse",
        "ChartMark",
        "ChartSeries",
        "ChartSeriesResponse",
        "Client",
        "ClientCredentials",
        "ComparisonMetricSeries",
        "Experiment",
        "ExperimentAnnotationResponse",
        "ExperimentResponse",
        "ExperimentStatusError",
        "ExperimentsResponse",
        "Folder",
        "FolderContentsResponse",
        "FolderResponse",
        "FoldersResponse",
        "IngestResponse",
        "IngestionKey",
        "IngestionKeyCreateResponse",
        "IngestionKeyResponse",
        "IngestionKeysResponse",
        "LoginToken",
        "LoginTokenResponse",
        "MetricCatalogItem",
        "MetricCatalogMetadataValue",
        "MetricCatalogResponse",
        "MetricCatalogValues",
        "MetricCatalogValuesResponse",
        "MetricCreateInput",
        "MetricEventRow",
        "MetricsApiAuthError",
        "MetricsApiError",
        "MetricsApiRequestError",
        "MetricsApiResponseError",
        "MetricsApiValidationError",
        "RetryPolicy",
        "RowsResponse",
        "RunHandshakeRequest",
        "RunHandshakeResponse",
        "SeriesLastStep",
        "credentials_path",
        "delete_credentials",
        "load_credentials",
        "save_credentials",
    }
    for name in metrana.api.__all__:
        assert hasattr(metrana.api, name), name


# -- one case per call: method, path, query, body, headers and the decoded answer -------------

CHART_SERIES = {
    "metric_name": "train/loss", "scale": "ML_STEP", "metadata": {"rank": "0"},
    "total_points": 3, "first_step": 0, "last_step": 20, "steps": [10, 20],
    "values": [0.5, 0.25], "times_ms": [1, 2], "marks": [[15, 15, "nan"]],
}  # fmt: skip
HANDSHAKE = RunHandshakeRequest(
    workspace_name="w", project_name="p", run_name="r", orchestration_id="o"
)
SERIES = ComparisonMetricSeries(
    experiment_id="7", metric_name="loss", metadata_key="split", metadata_value="train"
)
CATALOG = {"metrics": [{"metric_name": "loss", "metadata_keys": ["split"]}]}
CATALOG_VALUES = {
    "metadata": {
        "metric_name": "loss",
        "scanned_event_count": 2,
        "keys": [{"key": "split", "values": ["a", 1], "value_count": 2}],
    }
}
Case = tuple[str, tuple[Any, ...], dict[str, Any], str, str, list[tuple[str, str]], Any, Any]
CASES: list[Case] = [
    # name, args, kwargs, HTTP method, raw path under /api/v1, query, JSON body, answer's data
    ("auth_status", (), {}, "GET", "/auth/status", [], None, AUTH),
    ("list_folders", (), {}, "GET", "/folders", [], None, {"folders": [FOLDER]}),
    ("list_folders", (), {"path": "a/b"}, "GET", "/folders", [("path", "a/b")], None,
     {"folders": []}),
    ("create_folder", ("runs",), {}, "POST", "/folders", [], {"name": "runs", "parent_id": None},
     {"folder": FOLDER}),
    ("create_folder", ("runs",), {"parent_id": "3"}, "POST", "/folders", [],
     {"name": "runs", "parent_id": "3"}, {"folder": FOLDER}),
    ("get_folder", ("3",), {}, "GET", "/folders/3", [], None,
     {"folder": FOLDER, "folders": [FOLDER], "experiments": [EXPERIMENT]}),
    ("patch_folder", ("3",), {"name": "x", "parent_id": None}, "PATCH", "/folders/3", [],
     {"name": "x", "parent_id": None}, {"folder": FOLDER}),
    ("rename_folder", ("3", "new"), {}, "PATCH", "/folders/3", [], {"name": "new"},
     {"folder": FOLDER}),
    ("move_folder", ("3", None), {}, "PATCH", "/folders/3", [], {"parent_id": None},
     {"folder": FOLDER}),
    ("list_experiments", (), {}, "GET", "/experiments", [], None, {"experiments": []}),
    ("list_experiments", (),
     {"status": "running", "slug": "s", "search": "q", "from_ms": 1, "to_ms": 2, "limit": 3},
     "GET", "/experiments",
     [("status", "running"), ("slug", "s"), ("search", "q"), ("from", "1"), ("to", "2"),
      ("limit", "3")], None, {"experiments": [EXPERIMENT]}),
    ("create_experiment", ("mamba-run-001",), {"description": "d", "metadata": {"m": "x"}},
     "POST", "/experiments", [], {"slug": "mamba-run-001", "description": "d",
                                  "metadata": {"m": "x"}}, {"experiment": EXPERIMENT}),
    ("create_experiment", ("s",), {"folder_id": None}, "POST", "/experiments", [],
     {"slug": "s", "description": "", "metadata": {}, "folder_id": None},
     {"experiment": EXPERIMENT}),
    ("get_experiment", ("7",), {}, "GET", "/experiments/7", [], None, {"experiment": EXPERIMENT}),
    ("update_experiment_status", ("7", "done"), {}, "POST", "/experiments/7", [],
     {"status": "done"}, {"experiment": EXPERIMENT}),
    ("update_experiment_status", ("7", "error"),
     {"error": {"name": "ValueError", "detail": "boom"}, "timestamp_ms": 5},
     "POST", "/experiments/7", [],
     {"status": "error", "error": {"name": "ValueError", "detail": "boom"}, "timestamp_ms": 5},
     {"experiment": EXPERIMENT}),
    ("move_experiment", ("7", "3"), {}, "PATCH", "/experiments/7", [], {"folder_id": "3"},
     {"experiment": EXPERIMENT}),
    ("move_experiment", ("7", None), {}, "PATCH", "/experiments/7", [], {"folder_id": None},
     {"experiment": EXPERIMENT}),
    ("run_handshake", (HANDSHAKE,), {}, "POST", "/runs/handshake", [],
     msgspec.to_builtins(HANDSHAKE),
     {"experiment": EXPERIMENT, "created": True,
      "resume": [{"metric_name": "loss", "scale": "ML_STEP", "labels": {}, "last_step": 4}]}),
    ("list_metrics", ("7",), {}, "GET", "/experiments/7/metrics", [], None, {"rows": [ROW]}),
    ("list_metrics", ("7",),
     {"metric_name": "loss", "metadata_key": "split", "metadata_value": "train",
      "metadata_value_json": '"train"', "step": 1, "from_step": 0, "to_step": 9,
      "from_time": 10, "to_time": 20, "sort_by": ["step", "client_timestamp"],
      "sort_direction": "desc", "limit": 50, "include_experiment_meta_as_of": True},
     "GET", "/experiments/7/metrics",
     [("step", "1"), ("from_step", "0"), ("to_step", "9"), ("from_time", "10"),
      ("to_time", "20"), ("sort_by", "step,client_timestamp"), ("sort_direction", "desc"),
      ("limit", "50"), ("include_experiment_meta_as_of", "true"), ("metric_name", "loss"),
      ("metadata_key", "split"), ("metadata_value", "train"),
      ("metadata_value_json", '"train"')], None, {"rows": [ROW]}),
    ("compare_metrics",
     ([SERIES, {"experiment_id": "8", "metric_name": "loss", "metadata_key": "seed",
                "metadata_value_json": "1"}, {"experiment_id": "9", "metric_name": "acc"}],),
     {"from_step": 1, "sort_by": ["series", "step"], "limit": 500,
      "include_experiment_meta_as_of": False},
     "GET", "/metrics",
     [("from_step", "1"), ("sort_by", "series,step"), ("limit", "500"),
      ("include_experiment_meta_as_of", "false"),
      ("series", '{"experiment_id":"7","metric_name":"loss","metadata_key":"split",'
                 '"metadata_value":"train"}'),
      ("series", '{"experiment_id":"8","metric_name":"loss","metadata_key":"seed",'
                 '"metadata_value_json":"1"}'),
      ("series", '{"experiment_id":"9","metric_name":"acc"}')], None, {"rows": [ROW, ROW]}),
    ("list_metric_catalog", ("7",), {"limit": 10}, "GET", "/experiments/7/catalog",
     [("limit", "10")], None, CATALOG),
    ("inspect_metric_catalog_values", ("7", "train/loss"), {"key": ["split", "seed"], "limit": 5},
     "GET", "/experiments/7/catalog/train%2Floss", [("key", "split"), ("key", "seed"),
                                                    ("limit", "5")], None, CATALOG_VALUES),
    ("inspect_metric_catalog_values", ("7", "loss"), {"key": "split"}, "GET",
     "/experiments/7/catalog/loss", [("key", "split")], None, CATALOG_VALUES),
    ("list_ingestion_keys", ("7",), {}, "GET", "/experiments/7/ingestion-keys", [], None,
     {"keys": [INGESTION_KEY]}),
    ("create_ingestion_key", ("7",), {}, "POST", "/experiments/7/ingestion-keys", [],
     {"name": "SDK ingestion key", "ttl_ms": None}, {"key": INGESTION_KEY, "token": "mti_x"}),
    ("create_ingestion_key", ("7",), {"name": "ci", "ttl_ms": 60_000}, "POST",
     "/experiments/7/ingestion-keys", [], {"name": "ci", "ttl_ms": 60_000},
     {"key": INGESTION_KEY, "token": "mti_x"}),
    ("revoke_ingestion_key", ("7", "5"), {}, "DELETE", "/experiments/7/ingestion-keys/5", [],
     None, {"key": {**INGESTION_KEY, "revoked_at_ms": 9}}),
    ("list_annotations", ("7",), {"from_ms": 1, "to_ms": 2, "limit": 3}, "GET",
     "/experiments/7/annotations", [("from", "1"), ("to", "2"), ("limit", "3")], None,
     {"annotations": [ANNOTATION]}),
    ("chart_series", ("7", ["train/loss"]), {"width": 500, "from_step": 10, "to_step": 20},
     "GET", "/experiments/7/charts",
     [("metric_name", "train/loss"), ("width", "500"), ("from_step", "10"), ("to_step", "20")],
     None, {"series": [CHART_SERIES], "width": 500}),
    ("experiment_summaries", (["7", "8"], ["loss"]), {}, "GET", "/experiment-summaries",
     [("experiment_id", "7"), ("experiment_id", "8"), ("metric_name", "loss")], None,
     {"summaries": [{"experiment_id": "7", "series": 2, "points": 10, "last_values": [
         {"metric_name": "loss", "metadata": {}, "step": 4, "value": "nan"}]}]}),
    ("create_login_token", (), {}, "POST", "/auth/login-tokens", [], {"ttl_ms": None},
     {"login": {"url": "http://h/login?token=mtl_x", "expires_at_ms": 5}}),
]  # fmt: skip
# ingest_metrics and create_annotation present an ingestion key: test_client_ingest_unit.py
WITH_INGESTION_KEY = {"ingest_metrics", "create_annotation"}


def test_the_cases_cover_every_route_and_every_syvain_method() -> None:
    routes = {case[0] for case in CASES} - {"rename_folder", "move_folder"}
    assert routes | WITH_INGESTION_KEY == set(ROUTES_BY_NAME)
    methods = {case[0] for case in CASES} | WITH_INGESTION_KEY | {"forget_ingestion_credential"}
    assert set(_syvain_methods()) - NOT_PROVIDED - {"__init__", "from_api_key", "from_local"} <= (
        methods
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_each_method_sends_its_request_and_decodes_its_answer(serve: Servers, case: Case) -> None:
    name, args, kwargs, method, path, query, expected_body, answer = case
    server = serve(ok(answer))
    with server.client() as client:
        result = getattr(client, name)(*args, **kwargs)
    (request,) = server.requests
    assert (request.method, request.url.scheme, request.url.host, request.url.port) == (
        method,
        "http",
        "metrana.test",
        8765,
    )
    assert raw_path(request) == "/api/v1" + path
    assert request.url.params.multi_items() == query
    assert body(request) == expected_body
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Accept"] == "application/json"
    assert ("Content-Type" in request.headers) == (expected_body is not None)
    if expected_body is not None:
        assert request.headers["Content-Type"] == "application/json"
    idempotency_key = request.headers.get("Idempotency-Key")
    if method in ("POST", "PATCH") and name not in ("create_ingestion_key", "create_login_token"):
        assert idempotency_key is not None
        assert re.fullmatch(IDEMPOTENCY_KEY, idempotency_key)
    else:
        assert idempotency_key is None
    assert request.extensions["timeout"]["read"] == 10.0
    route = "patch_folder" if name in ("rename_folder", "move_folder") else name
    assert type(result) is ROUTES_BY_NAME[route].response
    assert msgspec.to_builtins(result) == answer


def test_path_parameters_are_quoted(serve: Servers) -> None:
    server = serve(ok({"experiment": EXPERIMENT}))
    with server.client() as client:
        client.get_experiment("a b/c?d#e")
    assert raw_path(server.requests[0]) == "/api/v1/experiments/a%20b%2Fc%3Fd%23e"


def test_each_write_gets_its_own_idempotency_key(serve: Servers) -> None:
    server = serve(ok({"folder": FOLDER}))
    with server.client() as client:
        client.rename_folder("3", "a")
        client.rename_folder("3", "a")
    keys = {request.headers["Idempotency-Key"] for request in server.requests}
    assert len(keys) == 2


def test_non_finite_values_of_rows_read_as_floats(serve: Servers) -> None:
    rows = [{**ROW, "metric_value": text} for text in ("nan", "inf", "-inf")] + [ROW]
    server = serve(ok({"rows": rows}))
    with server.client() as client:
        values = [row.metric_value for row in client.list_metrics("7").rows]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.5]
    assert all(isinstance(value, float) for value in values)


def test_a_closed_client_says_so(serve: Servers) -> None:
    server = serve(ok(AUTH))
    with server.client() as client:
        pass
    with pytest.raises(MetricsApiError, match="closed"):
        client.auth_status()
    assert server.requests == []


# -- the envelope ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, json=[AUTH]), "Metrics API response must be a JSON object."),
        (httpx.Response(200, json={"data": AUTH}), "Metrics API response must include error."),
        (
            httpx.Response(200, json={"data": AUTH, "error": ""}),
            "Metrics API response error must be null.",
        ),
        (
            httpx.Response(200, json={"data": AUTH, "error": "nope"}),
            "Metrics API error: nope",
        ),
        (
            httpx.Response(200, json={"data": AUTH, "error": {"message": "m", "details": "d"}}),
            "Metrics API error: m: d",
        ),
        (
            httpx.Response(200, json={"data": AUTH, "error": 3}),
            "Metrics API error: Metrics API request failed.",
        ),
        (httpx.Response(200, json={"error": None}), "Metrics API response must include data."),
        (ok({"auth": {"kind": "robot"}}), "Metrics API response for auth_status did not match "
         "the expected schema."),
        (ok(None), "Metrics API response for auth_status did not match the expected schema."),
    ],
)  # fmt: skip
def test_an_answer_out_of_the_envelope_is_a_response_error(
    serve: Servers, answer: httpx.Response, message: str
) -> None:
    server = serve(answer)
    with server.client() as client, pytest.raises(MetricsApiResponseError) as caught:
        client.auth_status()
    assert str(caught.value) == message
    assert isinstance(caught.value, MetricsApiError) and isinstance(caught.value, RuntimeError)
    assert len(server.requests) == 1


def test_a_schema_mismatch_keeps_what_did_not_match_as_its_cause(serve: Servers) -> None:
    server = serve(ok({"folders": [{**FOLDER, "folder_id": 3}]}))
    with server.client() as client, pytest.raises(MetricsApiResponseError) as caught:
        client.list_folders()
    assert "Expected `str`, got `int` - at `$.folders[0].folder_id`" in str(caught.value.__cause__)


def test_extra_fields_of_an_answer_are_allowed(serve: Servers) -> None:
    server = serve(ok({"folder": {**FOLDER, "color": "blue"}, "etag": "x"}))
    with server.client() as client:
        assert client.create_folder("f").folder.name == "mnist"


def test_a_success_that_is_not_json_is_a_retryable_request_error_not_retried(
    serve: Servers,
) -> None:
    server = serve(httpx.Response(200, text="<html>proxy</html>"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert caught.value.retryable and caught.value.status_code is None
    assert str(caught.value).startswith("Metrics API request failed for auth_status: ")
    assert len(server.requests) == 1


# -- error answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message", "code", "server_message"),
    [
        (
            httpx.Response(404, json={"error": {"message": "no experiment 7",
                                                "details": "code=not_found;id=7"}}),
            "HTTP 404: no experiment 7: code=not_found;id=7", "not_found", "no experiment 7",
        ),
        (httpx.Response(400, json={"error": "bad things"}), "HTTP 400: bad things", None,
         "bad things"),
        (httpx.Response(400, json={"error": {"details": "code=x"}}),
         "HTTP 400: Metrics API request failed.: code=x", "x", "Metrics API request failed."),
        (httpx.Response(403, json={"detail": "no"}), 'HTTP 403: {"detail":"no"}', None,
         '{"detail":"no"}'),
        (httpx.Response(400, text="x" * 600), "HTTP 400: " + "x" * 500, None, "x" * 500),
        (httpx.Response(403), "HTTP 403: Metrics API request failed.", None,
         "Metrics API request failed."),
    ],
)  # fmt: skip
def test_an_error_answer_is_decoded_as_the_syvain_client_does(
    serve: Servers, answer: httpx.Response, message: str, code: str | None, server_message: str
) -> None:
    server = serve(answer)
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_experiment("7")
    error = caught.value
    assert str(error) == message
    assert (error.status_code, error.error_code, error.retryable) == (
        answer.status_code,
        code,
        False,
    )
    assert error.server_message == server_message
    assert isinstance(error, MetricsApiError) and isinstance(error, metrana.MetranaError)
    assert len(server.requests) == 1  # a 4xx is an answer, not retried


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(408, None), (425, None), (429, None), (500, None), (502, None), (503, "unavailable")],
)
def test_transient_answers_are_retried_with_the_same_idempotency_key(
    serve: Servers, sleeps: list[float], status: int, code: str | None
) -> None:
    first = api_error(status, code, "later") if code else httpx.Response(status, text="busy")
    server = serve(first, ok({"folder": FOLDER}))
    with server.client() as client:
        assert client.create_folder("runs").folder.name == "mnist"
    retried, answered = server.requests
    assert retried.headers["Idempotency-Key"] == answered.headers["Idempotency-Key"]
    assert retried.content == answered.content
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= FAST.max_delay


def test_reads_and_deletes_are_retried_too(serve: Servers, sleeps: list[float]) -> None:
    server = serve(
        httpx.Response(503),
        ok(AUTH),
        httpx.Response(502),
        ok({"key": INGESTION_KEY}),
    )
    with server.client() as client:
        client.auth_status()
        client.revoke_ingestion_key("7", "5")
    assert [r.method for r in server.requests] == ["GET", "GET", "DELETE", "DELETE"]
    assert all("Idempotency-Key" not in r.headers for r in server.requests)


def test_retry_after_is_honoured(serve: Servers, sleeps: list[float]) -> None:
    server = serve(api_error(429, "rate_limited", "slow down", **{"Retry-After": "2"}), ok(AUTH))
    with server.client() as client:
        client.auth_status()
    assert sleeps and sleeps[0] >= 2.0


def test_in_progress_is_polled_apart_from_the_attempts(serve: Servers, sleeps: list[float]) -> None:
    busy = api_error(409, "idempotency_key_in_progress", "still running")
    server = serve(*[busy] * 9, ok({"experiment": EXPERIMENT}))
    once = RetryPolicy(max_attempts=1)
    with server.client(retry=once) as client:
        client.update_experiment_status("7", "done")
    assert len(server.requests) == 10 and sleeps == [0.5] * 9
    assert len({r.headers["Idempotency-Key"] for r in server.requests}) == 1


def test_the_tenth_in_progress_answer_is_raised(serve: Servers, sleeps: list[float]) -> None:
    server = serve(api_error(409, "idempotency_key_in_progress", "still running"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.update_experiment_status("7", "done")
    assert len(server.requests) == 10
    error = caught.value
    assert (error.status_code, error.error_code, error.retryable) == (
        409,
        "idempotency_key_in_progress",
        True,
    )
    assert "gave up after 10 answers" in str(error)


def test_a_plain_409_is_an_answer_not_retried(serve: Servers, sleeps: list[float]) -> None:
    server = serve(api_error(409, "conflict", "slug taken"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.create_experiment("s")
    assert (caught.value.status_code, caught.value.retryable, len(server.requests)) == (
        409,
        False,
        1,
    )


def test_transport_errors_are_retried(serve: Servers, sleeps: list[float]) -> None:
    server = serve(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("hung up"),
        ok({"folder": FOLDER}),
    )
    policy = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.002)
    with server.client(retry=policy) as client:
        client.move_folder("3", "1")
    assert len(server.requests) == 4 and len(sleeps) == 3
    assert len({r.headers["Idempotency-Key"] for r in server.requests}) == 1


def test_unreachable_after_the_budget_has_no_status(serve: Servers, sleeps: list[float]) -> None:
    server = serve(httpx.ConnectError("connection refused"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.list_folders()
    error = caught.value
    assert error.status_code is None and error.error_code is None and error.retryable
    assert str(error).startswith(f"cannot reach {HOST}: ConnectError: connection refused")
    assert "gave up after 3 attempts" in str(error)
    assert len(server.requests) == FAST.max_attempts and len(sleeps) == FAST.max_attempts - 1


def test_a_spent_budget_raises_the_last_answer(serve: Servers, sleeps: list[float]) -> None:
    server = serve(api_error(503, "unavailable", "still restarting"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_experiment("7")
    assert (caught.value.status_code, caught.value.error_code) == (503, "unavailable")
    assert "still restarting" in caught.value.server_message
    assert len(server.requests) == FAST.max_attempts


def test_the_elapsed_budget_stops_retries(serve: Servers, sleeps: list[float]) -> None:
    server = serve(api_error(503, "unavailable", "down", **{"Retry-After": "100"}))
    policy = RetryPolicy(max_attempts=10, max_elapsed=5.0, base_delay=0.001, max_delay=0.002)
    with server.client(retry=policy) as client, pytest.raises(MetricsApiRequestError) as caught:
        client.get_folder("3")
    assert len(server.requests) == 1 and sleeps == []  # 100 s does not fit a 5 s budget
    assert caught.value.status_code == 503


def test_a_non_retryable_transport_error_fails_at_once(serve: Servers, sleeps: list[float]) -> None:
    server = serve(httpx.UnsupportedProtocol("no such scheme"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.auth_status()
    assert caught.value.status_code is None and len(server.requests) == 1 and sleeps == []


def test_the_default_policy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "2")
    server = Server(httpx.ConnectError("refused"))
    client = Client(KEY, host=HOST, transport=httpx.MockTransport(server))
    with client, pytest.raises(MetricsApiRequestError):
        client.auth_status()
    assert len(server.requests) == 2


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
