"""The server's own behaviour, over raw HTTP against a live server on a loopback port: the
envelope and error codes, organizations, ingestion keys, idempotency, strict decoding, the
protobuf ingestion and the run handshake. Every client method through the real Syvain client
and ``metrana.Client`` is in ``test_conformance``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ENGINES

from metrana.api._routes import API_PREFIX, INGEST_PATH, PROTOBUF_CONTENT_TYPE, ROUTES
from metrana.proto import IngestResponse
from metrana.proto._codec import encode_batch
from metrana.storage import SeriesColumns, open_store
from metrana.testing import RunningServer, serve_in_thread, wait_until


class Refused(Exception):
    def __init__(self, response: httpx.Response) -> None:
        error = response.json()["error"]
        self.status = response.status_code
        self.code = error["details"].removeprefix("code=")
        self.message = error["message"]
        super().__init__(f"{self.status} {self.code}: {self.message}")


class Api:
    """Raw calls to ``/api/v1`` with a key; the ``data`` of a 2xx answer, else Refused."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url + API_PREFIX, headers={"Authorization": f"Bearer {key}"}
        )

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise Refused(response)
        body = response.json()
        assert set(body) == {"data", "error"} and body["error"] is None, body
        return body["data"]

    def refused(self, method: str, path: str, **kwargs: Any) -> Refused:
        with pytest.raises(Refused) as caught:
            self(method, path, **kwargs)
        return caught.value

    def experiment(self, slug: str = "run-1", folder_id: str | None = None) -> str:
        body: dict[str, Any] = {"slug": slug}
        if folder_id is not None:
            body["folder_id"] = folder_id
        return str(self("POST", "/experiments", json=body)["experiment"]["id"])

    def ingest(self, experiment_id: str, *events: dict[str, Any]) -> Any:
        data = [
            {"client_event_id": f"e{i}-{time.monotonic_ns()}", "step": None, **e}
            for i, e in enumerate(events)
        ]
        return self("POST", f"/experiments/{experiment_id}/ingest", json={"data": data})


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every test of this module runs against both engines (SQLite, then PostgreSQL)."""
    return str(request.param)


@pytest.fixture
def api(live_server: RunningServer) -> Iterator[Api]:
    caller = Api(live_server.url, live_server.api_key)
    yield caller
    caller.http.close()


def test_answers_are_in_the_envelope_and_errors_carry_their_code(api: Api) -> None:
    status = api("GET", "/auth/status")
    assert status["auth"] == {"kind": "api_key"}
    assert status["organization"] == {"id": "1", "name": "default"}
    missing = api.http.get("/folders/999")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"message": "no folder 999 in this organization", "details": "code=not_found"}
    }
    not_an_id = api.refused("GET", "/experiments/abc")
    assert (not_an_id.status, not_an_id.message) == (404, "no experiment 'abc'")


def test_unknown_or_missing_key_gets_401_and_touches_nothing(
    live_server: RunningServer, api: Api
) -> None:
    stranger = Api(live_server.url, "mtr_not-a-key")
    refused = stranger.refused("POST", "/folders", json={"name": "intruder"})
    assert (refused.status, refused.code) == (401, "unauthorized")
    assert "unknown, revoked or expired key" in refused.message
    bare = httpx.get(live_server.url + API_PREFIX + "/folders")
    assert (bare.status_code, bare.json()["error"]["details"]) == (401, "code=unauthorized")
    assert api("GET", "/folders") == {"folders": []}


def test_organizations_see_only_their_own(live_server: RunningServer, api: Api) -> None:
    store = open_store(live_server.store_path)
    _, other_key = store.create_api_key("other-org", "theirs")
    store.close()
    theirs = Api(live_server.url, other_key)
    folder = theirs("POST", "/folders", json={"name": "secret"})["folder"]
    experiment_id = theirs.experiment("hidden", folder["folder_id"])
    assert folder["org_id"] == "2"
    assert api("GET", "/folders") == {"folders": []}
    assert api("GET", "/experiments") == {"experiments": []}
    for path in (
        f"/folders/{folder['folder_id']}",
        f"/experiments/{experiment_id}",
        f"/experiments/{experiment_id}/metrics",
    ):
        assert api.refused("GET", path).status == 404
    assert (
        api.refused("POST", f"/experiments/{experiment_id}/ingestion-keys", json={}).status == 404
    )


def test_folders_nest_rename_and_move(api: Api) -> None:
    top = api("POST", "/folders", json={"name": "vision"})["folder"]
    sub = api("POST", "/folders", json={"name": "resnet", "parent_id": top["folder_id"]})["folder"]
    leaf = api("POST", "/folders", json={"name": "ablations", "parent_id": sub["folder_id"]})
    leaf = leaf["folder"]
    assert (leaf["path_name"], leaf["parent_id_path"]) == (
        "vision/resnet/ablations",
        [top["folder_id"], sub["folder_id"]],
    )
    found = api("GET", "/folders", params={"path": "vision/resnet/ablations"})["folders"]
    assert [f["folder_id"] for f in found] == [leaf["folder_id"]]
    assert api("GET", "/folders", params={"path": "vision/nope"}) == {"folders": []}

    renamed = api("PATCH", f"/folders/{sub['folder_id']}", json={"name": "resnet50"})["folder"]
    assert renamed["path_name"] == "vision/resnet50"
    moved = api("PATCH", f"/folders/{leaf['folder_id']}", json={"parent_id": None})["folder"]
    assert (moved["path_name"], moved["parent_id_path"]) == ("ablations", [])
    contents = api("GET", f"/folders/{top['folder_id']}")
    assert [f["name"] for f in contents["folders"]] == ["resnet50"]

    cycle = api.refused(
        "PATCH", f"/folders/{top['folder_id']}", json={"parent_id": sub["folder_id"]}
    )
    assert (cycle.status, cycle.code) == (409, "conflict")
    assert "into itself or one of its sub-folders" in cycle.message
    assert api.refused("POST", "/folders", json={"name": "vision"}).status == 409
    empty = api.refused("PATCH", f"/folders/{top['folder_id']}", json={})
    assert (empty.status, empty.message) == (400, "patch_folder needs name or parent_id (or both)")
    slash = api.refused("POST", "/folders", json={"name": "a/b"})
    assert slash.message == "a folder name cannot contain '/': 'a/b'"


def test_experiment_lifecycle_times_and_moves(api: Api) -> None:
    folder = api("POST", "/folders", json={"name": "f"})["folder"]
    created = api(
        "POST",
        "/experiments",
        json={
            "slug": "sweep-1",
            "description": "lr sweep",
            "metadata": {"lr": 0.1},
            "folder_id": folder["folder_id"],
        },
    )["experiment"]
    assert (created["status"], created["started_at_ms"], created["done_at_ms"]) == (
        "created",
        None,
        None,
    )
    assert created["url"].endswith(f"/experiments/{created['id']}")
    assert created["url"].startswith("http://127.0.0.1:")
    path = f"/experiments/{created['id']}"
    running = api("POST", path, json={"status": "running", "timestamp_ms": 1000})["experiment"]
    assert (running["status"], running["started_at_ms"]) == ("running", 1000)
    failed = api("POST", path, json={"status": "error", "error": {"name": "OOM"}})["experiment"]
    assert (failed["status"], failed["error_name"], failed["error_detail"]) == ("error", "OOM", "")
    assert failed["done_at_ms"] >= failed["started_at_ms"] == 1000
    bad = api.refused("POST", path, json={"status": "exploded"})
    assert (bad.status, bad.code) == (400, "invalid_request")

    top = api("PATCH", path, json={"folder_id": None})["experiment"]
    assert top["folder"] is None
    duplicate = api.refused("POST", "/experiments", json={"slug": "sweep-1"})
    assert (duplicate.status, duplicate.code) == (409, "conflict")
    listed = api("GET", "/experiments", params={"status": "error", "search": "SWEEP"})
    assert [e["slug"] for e in listed["experiments"]] == ["sweep-1"]
    nan = api.http.post(
        "/experiments",
        content=b'{"slug": "x", "metadata": {"a": 1e999}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    assert "Number out of range - at `$.metadata[...]`" in nan.text


def test_ingest_stores_each_event_once_and_continues_stepless_series(api: Api) -> None:
    experiment_id = api.experiment()
    events = [
        {"client_event_id": f"e{i}", "name": "loss", "value": 1.0 / (i + 1), "step": None}
        for i in range(10)
    ]
    events.append(
        {
            "client_event_id": "acc",
            "name": "acc",
            "value": 0.5,
            "step": 3,
            "metadata": {"split": "val", "k": 2},
        }
    )
    path = f"/experiments/{experiment_id}/ingest"
    first = api("POST", path, json={"data": events}, params={"sync": "true"})
    assert (first["ok"], first["mode"], first["accepted"], first["duplicates"]) == (
        True,
        "sync",
        11,
        0,
    )
    again = api("POST", path, json={"data": events})
    assert (again["accepted"], again["duplicates"]) == (0, 11)
    more = api.ingest(experiment_id, {"name": "loss", "value": 9.0})
    assert more["accepted"] == 1
    rows = api("GET", f"/experiments/{experiment_id}/metrics", params={"metric_name": "loss"})
    assert [r["step"] for r in rows["rows"]] == list(range(11))
    (acc,) = api(
        "GET",
        f"/experiments/{experiment_id}/metrics",
        params={"metadata_key": "k", "metadata_value_json": "2"},
    )["rows"]
    assert (acc["event_metadata_json"], acc["step"]) == ('{"k":2,"split":"val"}', 3)
    assert acc["event_id"].endswith("-3") and acc["experiment_slug"] == "run-1"
    too_many = [
        {"client_event_id": str(i), "name": "m", "value": 1.0, "step": i} for i in range(1001)
    ]
    refused = api.refused("POST", path, json={"data": too_many})
    assert (refused.status, "Expected `array` of length <= 1000" in refused.message) == (400, True)
    no_step_key = api.refused(
        "POST", path, json={"data": [{"client_event_id": "z", "name": "m", "value": 1.0}]}
    )
    assert "missing required field `step`" in no_step_key.message
    assert len(api("GET", f"/experiments/{experiment_id}/metrics")["rows"]) == 12


def test_rows_filter_sort_and_limit(api: Api) -> None:
    experiment_id = api.experiment()
    api.ingest(
        experiment_id,
        *[
            {
                "name": "m",
                "value": float(s),
                "step": s,
                "metadata": {"r": r},
                "timestamp_ms": 1000 + s,
            }
            for s in range(10)
            for r in ("0", "1")
        ],
    )
    url = f"/experiments/{experiment_id}/metrics"

    def steps(**params: Any) -> list[tuple[int, str]]:
        rows = api("GET", url, params=params)["rows"]
        return [(r["step"], r["event_metadata_json"]) for r in rows]

    assert steps(metadata_key="r", metadata_value="1", from_step=3, to_step=5) == [
        (3, '{"r":"1"}'),
        (4, '{"r":"1"}'),
        (5, '{"r":"1"}'),
    ]
    assert steps(step=7, metadata_key="r") == [(7, '{"r":"0"}'), (7, '{"r":"1"}')]
    assert [s for s, _ in steps(sort_direction="desc", limit=3)] == [9, 9, 8]
    assert [s for s, _ in steps(from_time=1002, to_time=1003)] == [2, 2, 3, 3]
    assert len(steps(sort_by="client_timestamp,step", limit=5)) == 5
    bad = api.refused("GET", url, params={"sort_by": "value"})
    assert (
        bad.message == "cannot sort by 'value'; accepted: step, client_timestamp, server_timestamp"
    )
    over = api.refused("GET", url, params={"limit": 100_001})
    assert over.message == "limit must be at most 100000, got 100001"
    json_bad = api.refused("GET", url, params={"metadata_key": "r", "metadata_value_json": "{"})
    assert json_bad.message == "metadata_value_json must be valid JSON, got '{'"
    with_meta = api("GET", url, params={"limit": 1, "include_experiment_meta_as_of": "true"})
    assert with_meta["rows"][0]["experiment_metadata_json"] == "{}"


def test_a_limited_read_holds_the_nearest_points_whatever_the_batches(api: Api) -> None:
    """Steps 0 and 100 in one batch, 50 in a later one: the chunks' step ranges overlap, and a
    read with a limit still gets the first (or, descending, the last) points of the series."""
    experiment_id = api.experiment()
    api.ingest(experiment_id, {"name": "m", "value": 0.0, "step": 0},
               {"name": "m", "value": 100.0, "step": 100})  # fmt: skip
    api.ingest(experiment_id, {"name": "m", "value": 50.0, "step": 50})
    url = f"/experiments/{experiment_id}/metrics"

    def steps(**params: Any) -> list[int]:
        return [row["step"] for row in api("GET", url, params=params)["rows"]]

    assert steps(limit=2) == [0, 50]
    assert steps(limit=1, sort_direction="desc") == [100]
    assert steps(limit=2, sort_direction="desc") == [100, 50]
    assert steps() == [0, 50, 100]
    series = [f'{{"experiment_id":"{experiment_id}","metric_name":"m"}}']
    compared = api("GET", "/metrics", params={"series": series, "limit": 2})["rows"]
    assert [row["step"] for row in compared] == [0, 50]


def test_a_stepless_event_goes_after_every_stored_step(api: Api) -> None:
    experiment_id = api.experiment()
    api.ingest(experiment_id, *[{"name": "m", "value": float(s), "step": s} for s in range(11)])
    answer = api.ingest(experiment_id, {"name": "m", "value": 3.0, "step": 3},
                        {"name": "m", "value": 42.0, "step": None})  # fmt: skip
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    rows = api("GET", f"/experiments/{experiment_id}/metrics", params={"from_step": 10})["rows"]
    assert [(row["step"], row["metric_value"]) for row in rows] == [(10, 10.0), (11, 42.0)]


def test_compare_merges_series_of_two_experiments(api: Api) -> None:
    first, second = api.experiment("a"), api.experiment("b")
    api.ingest(first, *[{"name": "loss", "value": float(s), "step": s} for s in range(3)])
    api.ingest(
        second,
        *[
            {"name": "loss", "value": 10.0 + s, "step": s, "metadata": {"rank": r}}
            for s in range(1, 3)
            for r in ("0", "1")
        ],
    )
    series = [
        f'{{"experiment_id":"{first}","metric_name":"loss"}}',
        f'{{"experiment_id":"{second}","metric_name":"loss","metadata_key":"rank",'
        '"metadata_value":"1"}',
    ]
    rows = api("GET", "/metrics", params={"series": series, "sort_by": "step,series"})["rows"]
    assert [(r["experiment_id"], r["step"], r["metric_value"]) for r in rows] == [
        (first, 0, 0.0),
        (first, 1, 1.0),
        (second, 1, 11.0),
        (first, 2, 2.0),
        (second, 2, 12.0),
    ]
    by_series = api("GET", "/metrics", params={"series": series, "sort_by": "series,step"})
    assert [r["experiment_id"] for r in by_series["rows"]] == [first] * 3 + [second] * 2
    none = api.refused("GET", "/metrics")
    assert none.message == "compare_metrics needs at least one series parameter"


def test_compare_reads_only_what_its_limit_needs_and_still_orders_exactly(
    store_location: str,
) -> None:
    """Two series of interleaved steps: the first ``limit`` rows of their union by step (each
    series is read only up to ``limit`` points), and the last ones when descending."""
    from metrana.api import _types as t

    store = open_store(store_location)
    try:
        ids = []
        for run, steps in (("even", range(0, 40, 2)), ("every3", range(0, 60, 3))):
            handle = store.open_run("default", "p", None, run, "job", allow_resume=True)
            columns = SeriesColumns(list(steps), [float(s) for s in steps], [1] * len(steps))
            for half in (columns.steps[:10], columns.steps[10:]):  # two chunks each
                part = SeriesColumns(half, [float(s) for s in half], [1] * len(half))
                store.write_batch(
                    run, half[0], handle.experiment_id, {("m", "ML_STEP", "{}"): part}
                )
            ids.append(str(handle.experiment_id))
        org = store.organization_id("default")
        series = [f'{{"experiment_id":"{i}","metric_name":"m"}}' for i in ids]
        up = store.compare_metrics(org, t.CompareQuery(series=series, limit=7))
        down = store.compare_metrics(
            org, t.CompareQuery(series=series, limit=4, sort_direction="desc")
        )
    finally:
        store.close()
    assert [(r.step, r.experiment_id) for r in up.rows] == [
        (0, ids[0]),
        (0, ids[1]),
        (2, ids[0]),
        (3, ids[1]),
        (4, ids[0]),
        (6, ids[0]),
        (6, ids[1]),
    ]
    assert [(r.step, r.experiment_id) for r in down.rows] == [
        (57, ids[1]),
        (54, ids[1]),
        (51, ids[1]),
        (48, ids[1]),
    ]


def test_catalog_lists_metrics_and_metadata_values(api: Api) -> None:
    experiment_id = api.experiment()
    api.ingest(
        experiment_id,
        {"name": "reward", "value": 1.0, "metadata": {"env": "cartpole", "seed": 1}},
        {"name": "reward", "value": 2.0, "metadata": {"env": "pong", "seed": 1}},
        {"name": "loss", "value": 0.5},
    )
    catalog = api("GET", f"/experiments/{experiment_id}/catalog")
    assert catalog == {
        "metrics": [
            {"metric_name": "loss", "metadata_keys": []},
            {"metric_name": "reward", "metadata_keys": ["env", "seed"]},
        ]
    }
    values = api(
        "GET",
        f"/experiments/{experiment_id}/catalog/reward",
        params={"key": ["env", "seed"], "limit": 1},
    )["metadata"]
    assert values == {
        "metric_name": "reward",
        "scanned_event_count": 2,
        "keys": [
            {"key": "env", "values": ["cartpole"], "value_count": 2},
            {"key": "seed", "values": [1], "value_count": 1},
        ],
    }


def test_ingestion_key_revocation_takes_effect_at_once(
    api: Api, live_server: RunningServer
) -> None:
    experiment_id = api.experiment()
    created = api("POST", f"/experiments/{experiment_id}/ingestion-keys", json={"name": "trainer"})
    token, key = created["token"], created["key"]
    assert token.startswith("mti_") and key["prefix"] == token[:12]
    body = encode_batch(
        "producer-1",
        1,
        int(experiment_id),
        {("loss", "ML_STEP", "{}"): SeriesColumns([0], [1.0], [5])},
    )
    url = live_server.url + API_PREFIX + INGEST_PATH
    headers = {"Authorization": f"Bearer {token}", "Content-Type": PROTOBUF_CONTENT_TYPE}
    ok = httpx.post(url, content=body, headers=headers)
    answer = IngestResponse()
    answer.ParseFromString(ok.content)
    assert (ok.status_code, answer.accepted, answer.duplicates, answer.replayed) == (
        200,
        1,
        0,
        False,
    )
    again = IngestResponse()
    again.ParseFromString(httpx.post(url, content=body, headers=headers).content)
    assert (again.accepted, again.replayed) == (1, True)

    revoked = api("DELETE", f"/experiments/{experiment_id}/ingestion-keys/{key['id']}")["key"]
    assert revoked["revoked_at_ms"] is not None
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    (listed,) = api("GET", f"/experiments/{experiment_id}/ingestion-keys")["keys"]
    assert listed["revoked_at_ms"] == revoked["revoked_at_ms"]
    assert listed["revoked_at_ms"] >= listed["last_used_at_ms"] >= listed["created_at_ms"]
    rows = api("GET", f"/experiments/{experiment_id}/metrics")["rows"]
    assert [(r["step"], r["metric_value"], r["client_timestamp_ms"]) for r in rows] == [(0, 1.0, 0)]
    other = api.experiment("other")
    wrong = api.refused("DELETE", f"/experiments/{other}/ingestion-keys/{key['id']}")
    assert wrong.status == 404


def test_ingestion_keys_expire_and_are_then_refused_at_once(
    api: Api, live_server: RunningServer
) -> None:
    experiment_id = api.experiment()
    path = f"/experiments/{experiment_id}/ingestion-keys"
    default = api("POST", path, json={})["key"]
    assert default["expires_at_ms"] - default["created_at_ms"] == 24 * 3600 * 1000
    assert default["name"] == "SDK ingestion key"
    short = api("POST", path, json={"name": "short", "ttl_ms": 500})
    assert short["key"]["expires_at_ms"] - short["key"]["created_at_ms"] == 500
    url = live_server.url + API_PREFIX + "/auth/status"
    headers = {"Authorization": f"Bearer {short['token']}"}
    status = httpx.get(url, headers=headers).json()["data"]
    assert (status["auth"]["kind"], status["experiment_id"]) == ("ingestion_key", experiment_id)
    wait_until(lambda: httpx.get(url, headers=headers).status_code == 401, 10)
    assert time.time() * 1000 >= short["key"]["expires_at_ms"]
    assert "expired" in httpx.get(url, headers=headers).json()["error"]["message"]


@pytest.mark.parametrize("ttl_ms", [0, -1, 7 * 24 * 3600 * 1000 + 1])
def test_a_key_lifetime_out_of_bounds_is_refused(api: Api, ttl_ms: int) -> None:
    experiment_id = api.experiment()
    path = f"/experiments/{experiment_id}/ingestion-keys"
    refused = api.refused("POST", path, json={"name": "k", "ttl_ms": ttl_ms})
    assert refused.status == 400 and "ttl_ms" in refused.message
    assert api("GET", path) == {"keys": []}


def test_ingestion_key_may_not_read_or_write_elsewhere(
    api: Api, live_server: RunningServer
) -> None:
    mine, theirs = api.experiment("mine"), api.experiment("theirs")
    token = api("POST", f"/experiments/{mine}/ingestion-keys", json={})["token"]
    scoped = Api(live_server.url, token)
    reading = scoped.refused("GET", "/folders")
    assert (reading.status, reading.code) == (403, "forbidden")
    writing = scoped.refused("POST", f"/experiments/{theirs}/ingest", json={"data": []})
    assert writing.status == 403
    assert scoped.ingest(mine, {"name": "m", "value": 1.0})["accepted"] == 1
    note = scoped("POST", f"/experiments/{mine}/annotations", json={"annotation": "hi"})
    assert note["annotation"]["annotation"] == "hi" and note["experiment"]["id"] == mine
    headers = {"Authorization": f"Bearer {token}", "Content-Type": PROTOBUF_CONTENT_TYPE}
    body = encode_batch("p", 1, int(theirs), {("x", "ML_STEP", "{}"): SeriesColumns([0], [1], [1])})
    response = httpx.post(live_server.url + API_PREFIX + INGEST_PATH, content=body, headers=headers)
    assert response.status_code == 403
    assert api("GET", f"/experiments/{theirs}/metrics") == {"rows": []}
    scoped.http.close()


def test_annotations_round_trip(api: Api) -> None:
    experiment_id = api.experiment()
    path = f"/experiments/{experiment_id}/annotations"
    first = api("POST", path, json={"annotation": "lr decayed", "metadata": {"step": 1000}})
    second = api("POST", path, json={"annotation": "checkpoint"})
    listed = api("GET", path)["annotations"]
    assert [(a["id"], a["annotation"], a["metadata"]) for a in listed] == [
        (first["annotation"]["id"], "lr decayed", {"step": 1000}),
        (second["annotation"]["id"], "checkpoint", {}),
    ]
    assert api("GET", path, params={"limit": 1})["annotations"] == listed[:1]
    later = api("GET", path, params={"from": listed[1]["created_at_ms"] + 1})
    assert later == {"annotations": []}


def test_run_handshake_creates_then_resumes_in_the_workspace_folder(api: Api) -> None:
    request = {
        "workspace_name": "research",
        "project_name": "p",
        "run_name": "r",
        "orchestration_id": "job-1",
        "metadata": {"lr": 0.1},
    }
    first = api("POST", "/runs/handshake", json=request)
    experiment = first["experiment"]
    assert first["created"] and first["resume"] == []
    assert (experiment["folder"]["path_name"], experiment["slug"], experiment["status"]) == (
        "research/p",
        "r",
        "running",
    )
    api.ingest(
        experiment["id"], {"name": "loss", "value": 1.0, "step": 7, "metadata": {"rank": "0"}}
    )
    api.ingest(experiment["id"], {"name": "other", "value": 1.0, "step": 1, "metadata": {"n": 1}})
    again = api("POST", "/runs/handshake", json={**request, "metadata": {"epochs": 3}})
    assert (again["experiment"]["id"], again["created"]) == (experiment["id"], False)
    assert again["experiment"]["metadata"] == {"lr": 0.1, "epochs": 3}
    # only log()'s series (string labels) are resumed
    assert again["resume"] == [
        {"metric_name": "loss", "scale": "ML_STEP", "labels": {"rank": "0"}, "last_step": 7}
    ]
    slash = api.refused("POST", "/runs/handshake", json={**request, "project_name": "a/b"})
    assert slash.message == "a workspace, project or experiment name cannot contain '/': 'a/b'"
    never = {**request, "orchestration_id": "job-2", "resume_strategy": "Never"}
    exists = api.refused("POST", "/runs/handshake", json=never)
    assert (exists.status, exists.code) == (409, "run_exists")


def test_post_retried_after_a_dropped_response_acts_once(live_server: RunningServer) -> None:
    from metrana.testing import Fault, FaultProxy

    with FaultProxy(live_server.url) as proxy:
        proxy.set_fault(Fault.drop_response(times=1, path_prefix=API_PREFIX + "/folders"))
        headers = {"Authorization": f"Bearer {live_server.api_key}", "Idempotency-Key": "k-drop"}
        url = proxy.url + API_PREFIX + "/folders"
        with pytest.raises(httpx.HTTPError):
            httpx.post(url, json={"name": "once"}, headers=headers)
        replay = httpx.post(url, json={"name": "once"}, headers=headers)
        assert replay.status_code == 200
    api = Api(live_server.url, live_server.api_key)
    assert [f["name"] for f in api("GET", "/folders")["folders"]] == ["once"]
    api.http.close()


def test_reused_idempotency_key_with_another_body_is_a_conflict(api: Api) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = api.http.post("/folders", json={"name": "a"}, headers=headers)
    replay = api.http.post("/folders", json={"name": "a"}, headers=headers)
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json()
    other = api.http.post("/folders", json={"name": "b"}, headers=headers)
    assert other.status_code == 409
    assert "already used for a different request" in other.json()["error"]["message"]


def test_a_repeat_of_a_request_still_running_is_told_to_retry(store_location: str) -> None:
    """While the first request with an Idempotency-Key is acted on, a repeat gets 409
    idempotency_key_in_progress (retryable); once it is done, the repeat gets its answer."""
    import asyncio

    from metrana.server import create_app

    store = open_store(store_location)
    _, key = store.create_api_key("default", "test")
    acting = threading.Event()
    release = threading.Event()
    act_once = store.idempotent

    def held(*args: Any) -> Any:  # the first request is held while it is being acted on
        acting.set()
        assert release.wait(30)
        return act_once(*args)

    store.idempotent = held  # type: ignore[method-assign]
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "slow-1"}
    transport = httpx.ASGITransport(app=create_app(store))

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            post = client.post(API_PREFIX + "/folders", json={"name": "slow"}, headers=headers)
            first = asyncio.ensure_future(post)
            assert await asyncio.to_thread(acting.wait, 10)
            repeat = await client.post(
                API_PREFIX + "/folders", json={"name": "slow"}, headers=headers
            )
            release.set()
            answered = await first
            store.idempotent = act_once  # type: ignore[method-assign]
            again = await client.post(
                API_PREFIX + "/folders", json={"name": "slow"}, headers=headers
            )
            return repeat, answered, again

    try:
        repeat, answered, again = asyncio.run(scenario())
    finally:
        release.set()
        store.close()
    assert repeat.status_code == 409
    assert repeat.json()["error"]["details"] == "code=idempotency_key_in_progress"
    assert answered.status_code == 200 and answered.json()["data"]["folder"]["name"] == "slow"
    assert again.json() == answered.json()


def test_create_ingestion_key_ignores_idempotency_keys(api: Api) -> None:
    experiment_id = api.experiment()
    path = f"/experiments/{experiment_id}/ingestion-keys"
    headers = {"Idempotency-Key": "same"}
    one = api.http.post(path, json={}, headers=headers).json()["data"]
    two = api.http.post(path, json={}, headers=headers).json()["data"]
    assert one["token"] != two["token"]


def test_protobuf_ingest_rejects_bad_input_without_writing(
    api: Api, live_server: RunningServer
) -> None:
    experiment_id = api.experiment()
    url = live_server.url + API_PREFIX + INGEST_PATH
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    wrong_type = httpx.post(url, content=b"{}", headers={**auth, "Content-Type": "text/json"})
    assert (wrong_type.status_code, wrong_type.json()["error"]["details"]) == (
        415,
        "code=unsupported_media_type",
    )
    garbage = httpx.post(
        url, content=b"\xff\x00garbage", headers={**auth, "Content-Type": PROTOBUF_CONTENT_TYPE}
    )
    assert (garbage.status_code, garbage.json()["error"]["details"]) == (400, "code=invalid_batch")
    assert api("GET", f"/experiments/{experiment_id}/metrics") == {"rows": []}


def test_oversized_body_gets_413(tmp_path: Path) -> None:
    with serve_in_thread(str(tmp_path / "small.sqlite"), max_body_bytes=1000) as server:
        response = httpx.post(
            server.url + API_PREFIX + INGEST_PATH,
            content=b"x" * 5000,
            headers={
                "Authorization": f"Bearer {server.api_key}",
                "Content-Type": PROTOBUF_CONTENT_TYPE,
            },
        )
    assert response.status_code == 413
    assert "over the server's limit of 1000 bytes" in response.json()["error"]["message"]


def test_openapi_document_lists_every_route(live_server: RunningServer) -> None:
    document = httpx.get(live_server.url + API_PREFIX + "/openapi.json").json()
    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert operations == {route.name for route in ROUTES} | {"ingest_protobuf"}
    assert "Experiment" in document["components"]["schemas"]
    assert httpx.get(live_server.url + "/healthz").json()["status"] == "ok"


def test_server_serves_what_was_logged_into_the_embedded_store(store_location: str) -> None:
    path = store_location
    store = open_store(path)
    handle = store.open_run("research", "proj", None, "local-run", "job", allow_resume=True)
    store.write_points(
        handle.experiment_id, {("loss", "ML_STEP", "{}"): SeriesColumns([0, 1], [2.0, 1.0], [1, 2])}
    )
    store.close()
    with serve_in_thread(path, organization="research") as server:
        api = Api(server.url, server.api_key)
        (experiment,) = api("GET", "/experiments")["experiments"]
        assert (experiment["slug"], experiment["folder"]["path_name"]) == (
            "local-run",
            "research/proj",
        )
        rows = api("GET", f"/experiments/{experiment['id']}/metrics")["rows"]
        assert [(r["step"], r["metric_value"]) for r in rows] == [(0, 2.0), (1, 1.0)]
        api.http.close()


# -- unknown body fields and query parameters ------------------------------------------------


def test_unknown_body_field_is_refused_and_changes_nothing(api: Api) -> None:
    folder = api("POST", "/folders", json={"name": "kept"})["folder"]
    refused = api.refused(
        "PATCH", f"/folders/{folder['folder_id']}", json={"name": "x", "description": "d"}
    )
    assert refused.message == (
        'unknown field "description" in the body of PATCH /folders/{folder_id}; '
        "accepted: name, parent_id"
    )
    assert api("GET", f"/folders/{folder['folder_id']}")["folder"] == folder


def test_unknown_body_fields_on_post_are_all_named_and_nothing_is_created(api: Api) -> None:
    headers = {"Idempotency-Key": "k-typo"}
    typos = api.refused(
        "POST", "/folders", json={"nmae": "a", "colour": "red", "parent": None}, headers=headers
    )
    assert typos.message == (
        'unknown fields "nmae", "colour", "parent" in the body of POST /folders; '
        "accepted: name, parent_id"
    )
    assert api("GET", "/folders") == {"folders": []}
    # The refused request recorded nothing under its Idempotency-Key: it is still free.
    assert api("POST", "/folders", json={"name": "a"}, headers=headers)["folder"]["name"] == "a"


def test_unknown_fields_in_nested_objects_are_named_with_their_place(api: Api) -> None:
    experiment_id = api.experiment()
    data = [
        {"client_event_id": f"e{i}", "name": "loss", "value": 1.0, "step": None, "stpe": i}
        for i in range(5)
    ]
    refused = api.refused(
        "POST", f"/experiments/{experiment_id}/ingest", json={"data": data, "synk": True}
    )
    assert refused.message == (
        'unknown field "synk" in the body of POST /experiments/{experiment_id}/ingest; '
        "accepted: data. "
        'Also unknown field "stpe" in data[0], data[1], data[2] and 2 more of the body; '
        "accepted: client_event_id, name, value, step, metadata, timestamp_ms, scale"
    )
    assert api("GET", f"/experiments/{experiment_id}/metrics") == {"rows": []}


def test_unknown_and_malformed_query_parameters_are_refused(api: Api) -> None:
    api.experiment("e")
    typo = api.refused("GET", "/experiments", params={"stauts": "running"})
    assert typo.message == (
        'unknown query parameter "stauts" in GET /experiments; '
        "accepted: status, slug, search, from, to, limit"
    )
    several = api.refused("GET", "/experiments", params={"status": "done", "x": 3, "page": 2})
    assert several.message.startswith('unknown query parameters "x", "page" in GET /experiments')
    on_post = api.refused("POST", "/folders", params={"dry_run": "1"}, json={"name": "g"})
    assert on_post.message == 'unknown query parameter "dry_run" in POST /folders; accepted: none'
    assert api("GET", "/folders") == {"folders": []}
    not_a_number = api.refused("GET", "/experiments", params={"limit": "ten"})
    assert not_a_number.message == (
        "invalid query parameter: Expected `int | null`, got `str` - at `$.limit`"
    )
    assert (
        api("GET", "/experiments", params={"status": "created", "limit": "5"})["experiments"][0][
            "slug"
        ]
        == "e"
    )


def test_routes_outside_the_table_keep_ignoring_query_parameters(
    api: Api, live_server: RunningServer
) -> None:
    experiment_id = int(api.experiment())
    body = encode_batch(
        "producer-q", 1, experiment_id, {("loss", "ML_STEP", "{}"): SeriesColumns([0], [1.0], [5])}
    )
    headers = {
        "Authorization": f"Bearer {live_server.api_key}",
        "Content-Type": PROTOBUF_CONTENT_TYPE,
    }
    ingested = httpx.post(
        live_server.url + API_PREFIX + INGEST_PATH, params={"x": "1"}, content=body, headers=headers
    )
    assert ingested.status_code == 200
    answer = IngestResponse()
    answer.ParseFromString(ingested.content)
    assert answer.accepted == 1
    for path in ("/healthz", API_PREFIX + "/health", API_PREFIX + "/openapi.json"):
        assert httpx.get(live_server.url + path, params={"probe": "1"}).status_code == 200


def test_the_listening_socket_is_tcp_so_answers_are_not_delayed() -> None:
    """asyncio sets TCP_NODELAY only on connections of a socket whose protocol is TCP; with
    proto 0 every answer on a kept-alive connection waited ~40 ms for a delayed ACK."""
    import socket

    from metrana.server._serve import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
