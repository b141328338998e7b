"""Unit tests of ``metrana.Client`` and ``AsyncClient`` against ``httpx.MockTransport``: the
ingestion keys ``ingest_metrics`` and ``create_annotation`` mint, cache, renew and replace,
and the checks of every call's arguments, which refuse bad ones before anything is sent."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _api_mock import (
    ANNOTATION,
    EXPERIMENT,
    IDEMPOTENCY_KEY,
    INGESTED,
    KEY,
    Server,
    api_error,
    bearer,
    body,
    key_created,
    ok,
    raw_path,
)

from metrana import MetranaConfigError
from metrana.api import (
    ComparisonMetricSeries,
    MetricCreateInput,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiValidationError,
)

Servers = Callable[..., Server]
LOSS = {"client_event_id": "run/loss/1", "name": "loss", "value": 0.42, "step": 1}


def ingest_server(
    flavor: str, *answers: httpx.Response, tokens: Iterator[str] | None = None, **key: Any
) -> Server:
    """Mints ``mti_1``, ``mti_2``… (with ``key``'s fields, such as ``expires_at_ms``) and
    answers the other calls in order (the last one repeats)."""
    minted = tokens or iter(f"mti_{n}" for n in range(1, 100))
    remaining = list(answers) or [ok(INGESTED)]

    def handle(request: httpx.Request) -> httpx.Response:
        if raw_path(request).endswith("/ingestion-keys"):
            return key_created(next(minted), **key)
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return Server(handle, flavor=flavor)


def paths(server: Server) -> list[str]:
    return [raw_path(r).rsplit("/", 1)[1] for r in server.requests]


# -- ingestion keys ------------------------------------------------------------------------------


def test_ingest_mints_a_key_with_the_api_key_and_sends_with_it(flavor: str) -> None:
    server = ingest_server(flavor)
    with server.client() as client:
        answer = client.ingest_metrics(
            "7",
            [
                {**LOSS, "metadata": {"split": "train"}, "timestamp_ms": 5},
                MetricCreateInput(client_event_id="e2", name="acc", value=1, step=None),
            ],
            sync=True,
        )
        client.ingest_metrics("7", [LOSS])
    assert (answer.ok, answer.mode, answer.accepted) == (True, "sync", 1)
    mint, first, second = server.requests
    assert (mint.method, raw_path(mint)) == ("POST", "/api/v1/experiments/7/ingestion-keys")
    assert bearer(mint) == KEY and "Idempotency-Key" not in mint.headers
    assert body(mint) == {"name": "SDK ingestion key", "ttl_ms": None}  # the server's lifetime
    assert (first.method, raw_path(first)) == ("POST", "/api/v1/experiments/7/ingest")
    assert bearer(first) == bearer(second) == "mti_1"
    assert re.fullmatch(IDEMPOTENCY_KEY, first.headers["Idempotency-Key"])
    assert first.extensions["timeout"]["read"] == 60.0  # ingest_timeout
    assert first.url.params.multi_items() == [("sync", "true")]
    assert second.url.params.multi_items() == []
    assert body(first) == {
        "data": [
            {
                "client_event_id": "run/loss/1",
                "name": "loss",
                "value": 0.42,
                "step": 1,
                "metadata": {"split": "train"},
                "timestamp_ms": 5,
            },
            {"client_event_id": "e2", "name": "acc", "value": 1.0, "step": None},
        ]
    }


def test_annotations_are_sent_with_the_cached_ingestion_key(flavor: str) -> None:
    server = ingest_server(
        flavor, ok(INGESTED), ok({"experiment": EXPERIMENT, "annotation": ANNOTATION})
    )
    with server.client(ingestion_key_name="trainer") as client:
        client.ingest_metrics("7", [LOSS])
        created = client.create_annotation("7", "lr drop", metadata={"step": 100})
    assert created.annotation.annotation == "lr drop" and created.experiment.id == "7"
    mint, _, annotate = server.requests
    assert body(mint) == {"name": "trainer", "ttl_ms": None}
    assert (annotate.method, raw_path(annotate)) == ("POST", "/api/v1/experiments/7/annotations")
    assert bearer(annotate) == "mti_1"
    assert re.fullmatch(IDEMPOTENCY_KEY, annotate.headers["Idempotency-Key"])
    assert annotate.extensions["timeout"]["read"] == 10.0  # timeout, not ingest_timeout
    assert body(annotate) == {"annotation": "lr drop", "metadata": {"step": 100}}


def test_keys_are_cached_per_experiment_and_can_be_forgotten(flavor: str) -> None:
    server = ingest_server(flavor)
    with server.client() as client:
        client.ingest_metrics("7", [LOSS])
        client.ingest_metrics("8", [LOSS])
        client.ingest_metrics("7", [LOSS])
        assert client.forget_ingestion_credential("7") is None
        client.ingest_metrics("7", [LOSS])
        client.forget_ingestion_credential("unknown")  # nothing to forget: nothing happens
    assert paths(server) == ["ingestion-keys", "ingest"] * 2 + [
        "ingest",
        "ingestion-keys",
        "ingest",
    ]
    ingests = [r for r in server.requests if raw_path(r).endswith("/ingest")]
    assert [bearer(r) for r in ingests] == ["mti_1", "mti_2", "mti_1", "mti_3"]


def test_a_key_is_renewed_when_it_has_5_minutes_left(flavor: str) -> None:
    now_ms = int(time.time() * 1000)
    server = ingest_server(flavor, expires_at_ms=now_ms + 5 * 60 * 1000 + 60_000)
    with server.client() as client:
        client.ingest_metrics("7", [LOSS])
        client.ingest_metrics("7", [LOSS])  # 6 minutes left: still used
    assert paths(server) == ["ingestion-keys", "ingest", "ingest"]
    server = ingest_server(flavor, expires_at_ms=now_ms + 5 * 60 * 1000 - 1_000)
    with server.client() as client:
        client.ingest_metrics("7", [LOSS])
        client.ingest_metrics("7", [LOSS])  # under 5 minutes left: replaced before use
    assert paths(server) == ["ingestion-keys", "ingest"] * 2
    assert [bearer(r) for r in server.requests if raw_path(r).endswith("/ingest")] == [
        "mti_1",
        "mti_2",
    ]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_replaced_once_and_the_call_sent_again(flavor: str, status: int) -> None:
    server = ingest_server(flavor, api_error(status, "unauthorized", "key revoked"), ok(INGESTED))
    with server.client() as client:
        assert client.ingest_metrics("7", [LOSS]).ok
        client.ingest_metrics("7", [LOSS])
    assert paths(server) == ["ingestion-keys", "ingest", "ingestion-keys", "ingest", "ingest"]
    refused, accepted, later = (r for r in server.requests if raw_path(r).endswith("/ingest"))
    assert [bearer(refused), bearer(accepted), bearer(later)] == ["mti_1", "mti_2", "mti_2"]
    assert refused.content == accepted.content
    # one logical call: the same Idempotency-Key; the old key is not revoked
    assert refused.headers["Idempotency-Key"] == accepted.headers["Idempotency-Key"]
    assert all(r.method != "DELETE" for r in server.requests)


def test_a_second_refusal_is_raised(flavor: str) -> None:
    server = ingest_server(flavor, api_error(401, "unauthorized", "no ingestion for you"))
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.create_annotation("7", "note")
    assert (caught.value.status_code, caught.value.error_code) == (401, "unauthorized")
    assert paths(server) == ["ingestion-keys", "annotations"] * 2


def test_other_errors_keep_the_key(flavor: str) -> None:
    server = ingest_server(flavor, api_error(404, "not_found", "no experiment 7"), ok(INGESTED))
    with server.client() as client:
        with pytest.raises(MetricsApiRequestError):
            client.ingest_metrics("7", [LOSS])
        client.ingest_metrics("7", [LOSS])
    assert paths(server) == ["ingestion-keys", "ingest", "ingest"]


def test_a_key_that_cannot_be_minted_is_the_error(flavor: str) -> None:
    server = Server(api_error(403, "forbidden", "not your experiment"), flavor=flavor)
    with server.client() as client, pytest.raises(MetricsApiRequestError) as caught:
        client.ingest_metrics("7", [LOSS])
    assert caught.value.status_code == 403 and paths(server) == ["ingestion-keys"]


def test_ingest_waits_for_the_servers_pacing_hint(flavor: str, sleeps: list[float]) -> None:
    server = ingest_server(flavor, ok({**INGESTED, "pacing_seconds": 5.0}))
    with server.client() as client:
        client.ingest_metrics("7", [LOSS])
        assert sleeps == []
        client.ingest_metrics("7", [LOSS])
    assert len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0


# -- arguments refused before sending ------------------------------------------------------------

INVALID = "invalid {} request: "
# call, its arguments, and the message of the MetricsApiValidationError it raises
REFUSED: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("create_folder", ("",), {}, "invalid create_folder request: Expected `str` of length >= 1"
     " - at `$.name`"),
    ("create_folder", ("x" * 201,), {}, "invalid create_folder request: Expected `str` of length"
     " <= 200 - at `$.name`"),
    ("create_folder", ("runs",), {"parent_id": 3}, "invalid create_folder request: Expected"
     " `str | null`, got `int` - at `$.parent_id`"),
    ("patch_folder", ("3",), {}, "invalid patch_folder request: give a name or a parent_id"
     " (None: the top level)"),
    ("rename_folder", ("3", ""), {}, "invalid patch_folder request: Expected `str` of length"
     " >= 1 - at `$.name`"),
    ("create_experiment", ("s" * 201,), {}, "invalid create_experiment request: Expected `str`"
     " of length <= 200 - at `$.slug`"),
    ("create_experiment", ("s",), {"description": "d" * 4001}, "invalid create_experiment"
     " request: Expected `str` of length <= 4000 - at `$.description`"),
    ("create_experiment", ("s",), {"metadata": {"a": {"b": [1, math.nan]}}}, "invalid"
     " create_experiment request: metadata must contain only finite numbers - at"
     " `$.metadata.a.b[1]`"),
    ("update_experiment_status", ("7", "finished"), {}, "invalid update_experiment_status"
     " request: Invalid enum value 'finished' - at `$.status`"),
    ("update_experiment_status", ("7", "error"), {"error": {"name": "E", "trace": "t"}},
     "invalid update_experiment_status request: Object contains unknown field `trace` - at"
     " `$.error`"),
    ("update_experiment_status", ("7", "error"), {"error": {"detail": "d" * 8001}},
     "invalid update_experiment_status request: Expected `str` of length <= 8000 - at"
     " `$.error.detail`"),
    ("update_experiment_status", ("7", "done"), {"timestamp_ms": -1}, "invalid"
     " update_experiment_status request: Expected `int` >= 0 - at `$.timestamp_ms`"),
    ("update_experiment_status", ("7", "error"), {"error": "boom"}, "invalid"
     " update_experiment_status request: expected a ExperimentStatusError or a mapping, not"
     " str"),
    ("ingest_metrics", ("7", [{**LOSS, "value": math.nan}]), {}, "invalid ingest_metrics"
     " request: value must be a finite number, not nan - at `$.data[0].value`"),
    ("ingest_metrics", ("7", [LOSS, {**LOSS, "value": -math.inf}]), {}, "invalid ingest_metrics"
     " request: value must be a finite number, not -inf - at `$.data[1].value`"),
    ("ingest_metrics", ("7", [{**LOSS, "metadata": {"x": math.inf}}]), {}, "invalid"
     " ingest_metrics request: metadata must contain only finite numbers - at"
     " `$.data[0].metadata.x`"),
    ("ingest_metrics", ("7", [{k: v for k, v in LOSS.items() if k != "step"}]), {}, "invalid"
     " ingest_metrics request: Object missing required field `step` - at `$.data[0]`"),
    ("ingest_metrics", ("7", [{**LOSS, "labels": {}}]), {}, "invalid ingest_metrics request:"
     " Object contains unknown field `labels` - at `$.data[0]`"),
    ("ingest_metrics", ("7", [{k: v for k, v in LOSS.items() if k != "client_event_id"}]), {},
     "invalid ingest_metrics request: Object missing required field `client_event_id` - at"
     " `$.data[0]`"),
    ("ingest_metrics", ("7", [{**LOSS, "client_event_id": ""}]), {}, "invalid ingest_metrics"
     " request: Expected `str` of length >= 1 - at `$.data[0].client_event_id`"),
    ("ingest_metrics", ("7", [{**LOSS, "name": "n" * 501}]), {}, "invalid ingest_metrics"
     " request: Expected `str` of length <= 500 - at `$.data[0].name`"),
    ("ingest_metrics", ("7", [{**LOSS, "step": -1}]), {}, "invalid ingest_metrics request:"
     " Expected `int` >= 0 - at `$.data[0].step`"),
    ("ingest_metrics", ("7", [{**LOSS, "value": "1"}]), {}, "invalid ingest_metrics request:"
     " Expected `float`, got `str` - at `$.data[0].value`"),
    ("ingest_metrics", ("7", [LOSS] * 1001), {}, "invalid ingest_metrics request: Expected"
     " `array` of length <= 1000 - at `$.data`"),
    ("ingest_metrics", ("7", LOSS), {}, "invalid ingest_metrics request: data must be a"
     " sequence of metrics, not dict"),
    ("ingest_metrics", ("7", [42]), {}, "invalid ingest_metrics request: expected a"
     " MetricCreateInput or a mapping, not int"),
    ("compare_metrics", ([{"experiment_id": "7", "metric_name": "loss", "metadata_value": "a"}],),
     {}, "invalid compare_metrics series: metadata_key is required when filtering by metadata"
     " value. - at `$[0]`"),
    ("compare_metrics", ([{"experiment_id": "7", "metric_name": "loss", "metadata_key": "k",
                           "metadata_value": "a", "metadata_value_json": '"a"'}],), {},
     "invalid compare_metrics series: Provide only one of metadata_value or"
     " metadata_value_json. - at `$[0]`"),
    ("compare_metrics", ([{"experiment_id": "7", "metric_name": "loss", "metadata_key": "k",
                           "metadata_value_json": "{"}],), {},
     "invalid compare_metrics series: metadata_value_json must be valid JSON. - at `$[0]`"),
    ("compare_metrics", ([{"experiment_id": "7", "metric": "loss"}],), {}, "invalid"
     " compare_metrics series: Object contains unknown field `metric` - at `$[0]`"),
    ("compare_metrics", ([{"experiment_id": "", "metric_name": "loss"}],), {}, "invalid"
     " compare_metrics series: Expected `str` of length >= 1 - at `$[0].experiment_id`"),
    ("create_ingestion_key", ("7",), {"ttl_ms": 0}, "invalid create_ingestion_key request:"
     " Expected `int` >= 1 - at `$.ttl_ms`"),
    ("create_ingestion_key", ("7",), {"ttl_ms": 7 * 24 * 3600 * 1000 + 1}, "invalid"
     " create_ingestion_key request: Expected `int` <= 604800000 - at `$.ttl_ms`"),
    ("create_ingestion_key", ("7",), {"name": ""}, "invalid create_ingestion_key request:"
     " Expected `str` of length >= 1 - at `$.name`"),
    ("create_annotation", ("7", ""), {}, "invalid create_annotation request: Expected `str` of"
     " length >= 1 - at `$.annotation`"),
    ("create_annotation", ("7", "a" * 16_001), {}, "invalid create_annotation request: Expected"
     " `str` of length <= 16000 - at `$.annotation`"),
    ("create_annotation", ("7", "note"), {"metadata": {"loss": math.nan}}, "invalid"
     " create_annotation request: metadata must contain only finite numbers - at"
     " `$.metadata.loss`"),
    ("create_annotation", ("7", "note"), {"metadata": {"when": object()}}, "invalid"
     " create_annotation request: Encoding objects of type object is unsupported"),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=[f"{case[0]}-{i}" for i, case in enumerate(REFUSED)])
def test_bad_arguments_are_refused_before_anything_is_sent(
    flavor: str, case: tuple[str, tuple[Any, ...], dict[str, Any], str]
) -> None:
    name, args, kwargs, message = case
    server = ingest_server(flavor)
    with server.client() as client, pytest.raises(MetricsApiValidationError) as caught:
        getattr(client, name)(*args, **kwargs)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, MetricsApiError)
    assert server.requests == []


def test_a_comparison_series_checks_its_rules_when_built() -> None:
    with pytest.raises(ValueError, match=r"^metadata_key is required when filtering"):
        ComparisonMetricSeries(experiment_id="7", metric_name="loss", metadata_value="a")
    with pytest.raises(ValueError, match=r"^metadata_value_json must be valid JSON\.$"):
        ComparisonMetricSeries(
            experiment_id="7", metric_name="loss", metadata_key="k", metadata_value_json="x"
        )


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("timeout", 0, "timeout must be greater than 0."),
        ("timeout", -1.0, "timeout must be greater than 0."),
        ("timeout", math.nan, "timeout must be greater than 0."),
        ("timeout", "10", "timeout must be a number of seconds, not '10'."),
        ("ingest_timeout", 0.0, "ingest_timeout must be greater than 0."),
        ("ingestion_key_name", "", "ingestion_key_name must not be empty."),
    ],
)
def test_bad_settings_are_value_errors(
    flavor: str, setting: str, value: object, message: str
) -> None:
    with pytest.raises(MetranaConfigError) as caught:
        Server(ok({}), flavor=flavor).client(**{setting: value})
    assert str(caught.value) == message and isinstance(caught.value, ValueError)
