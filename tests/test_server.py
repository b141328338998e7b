"""Every client method against a live server on a random loopback port."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from metrana import MetranaConfigError
from metrana.api import Client, ComparisonMetricSeries, MetricsApiRequestError
from metrana.api._routes import API_PREFIX, INGEST_PATH, PROTOBUF_CONTENT_TYPE, ROUTES
from metrana.proto import IngestResponse
from metrana.proto._codec import encode_batch
from metrana.storage import SeriesColumns, SqliteStore
from metrana.testing import Fault, FaultProxy, RunningServer, serve_in_thread, wait_until


def _experiment(client: Client, name: str = "run-1", folder: str = "proj") -> int:
    folders = {f.name: f.id for f in client.list_folders()}
    folder_id = folders.get(folder) or client.create_folder(folder).id
    return client.create_experiment(folder_id, name).id


def test_auth_status_names_the_key_and_workspace(client: Client) -> None:
    status = client.auth_status()
    assert (status.workspace_name, status.key_kind, status.key_name) == ("default", "api", "test")
    assert status.experiment_id is None


def test_unknown_or_missing_key_gets_401_and_touches_nothing(live_server: RunningServer) -> None:
    with (
        Client("mtr_not-a-key", host=live_server.url) as stranger,
        pytest.raises(MetricsApiRequestError) as error,
    ):
        stranger.create_folder("intruder")
    assert (error.value.status_code, error.value.error_code) == (401, "unauthorized")
    assert "unknown, revoked or expired key" in str(error.value)
    response = httpx.get(live_server.url + API_PREFIX + "/folders")
    assert response.status_code == 401
    assert response.json()["error"]["details"] == "code=unauthorized"
    with Client(live_server.api_key, host=live_server.url) as owner:
        assert owner.list_folders() == []


def test_nested_folders_rename_patch_and_moves(client: Client) -> None:
    top = client.create_folder("vision", description="image models")
    sub = client.create_folder("resnet", parent_id=top.id)
    leaf = client.create_folder("ablations", parent_id=sub.id)
    assert leaf.path == ["vision", "resnet", "ablations"]
    assert [f.name for f in client.list_folders()] == ["vision"]
    assert [f.id for f in client.list_folders(parent_id=sub.id)] == [leaf.id]

    assert client.patch_folder(top.id, description="CV").description == "CV"
    assert client.rename_folder(sub.id, "resnet50").name == "resnet50"
    assert client.get_folder(leaf.id).path == ["vision", "resnet50", "ablations"]

    moved = client.move_folder(leaf.id, None)
    assert (moved.parent_id, moved.path) == (None, ["ablations"])
    assert sorted(f.name for f in client.list_folders()) == ["ablations", "vision"]

    with pytest.raises(MetricsApiRequestError) as cycle:
        client.move_folder(top.id, sub.id)
    assert (cycle.value.status_code, cycle.value.error_code) == (409, "conflict")
    assert "into itself or one of its sub-folders" in str(cycle.value)
    with pytest.raises(MetricsApiRequestError) as duplicate:
        client.create_folder("vision")
    assert duplicate.value.status_code == 409
    with pytest.raises(MetricsApiRequestError) as missing:
        client.get_folder(999)
    assert (missing.value.status_code, missing.value.error_code) == (404, "not_found")


def test_experiments_create_list_status_and_move(client: Client) -> None:
    a = client.create_folder("a")
    b = client.create_folder("b")
    experiment = client.create_experiment(
        a.id, "sweep-1", description="lr sweep", metadata={"lr": 0.1, "tags": ["x"]}
    )
    assert (experiment.status, experiment.metadata) == ("running", {"lr": 0.1, "tags": ["x"]})
    client.create_experiment(a.id, "sweep-2")

    finished = client.update_experiment_status(experiment.id, "finished")
    assert finished.status == "finished"
    assert [e.name for e in client.list_experiments(status="finished")] == ["sweep-1"]
    assert [e.name for e in client.list_experiments(folder_id=a.id)] == ["sweep-1", "sweep-2"]

    assert client.move_experiment(experiment.id, b.id).folder_id == b.id
    assert [e.name for e in client.list_experiments(folder_id=b.id)] == ["sweep-1"]
    assert client.get_experiment(experiment.id).description == "lr sweep"

    with pytest.raises(MetricsApiRequestError) as bad_status:
        client.update_experiment_status(experiment.id, "exploded")
    assert (bad_status.value.status_code, bad_status.value.error_code) == (400, "invalid_request")


def test_run_handshake_creates_then_resumes(client: Client) -> None:
    from metrana.api import RunHandshakeRequest

    request = RunHandshakeRequest(project_name="p", run_name="r", orchestration_id="job-1")
    first = client.run_handshake(request)
    assert first.created and first.resume == []
    client.ingest_metrics(first.experiment_id, [{"metric_name": "loss", "value": 1.0, "step": 7}])
    again = client.run_handshake(request)
    assert (again.experiment_id, again.created) == (first.experiment_id, False)
    assert [(s.metric_name, s.last_step) for s in again.resume] == [("loss", 7)]

    never = RunHandshakeRequest(
        project_name="p", run_name="r", orchestration_id="job-2", resume_strategy="Never"
    )
    with pytest.raises(MetricsApiRequestError) as exists:
        client.run_handshake(never)
    assert (exists.value.status_code, exists.value.error_code) == (409, "run_exists")


def test_ingest_metrics_twice_stores_each_point_once(client: Client) -> None:
    experiment_id = _experiment(client)
    metrics = [
        {"client_event_id": f"e{i}", "metric_name": "loss", "value": 1.0 / (i + 1)}
        for i in range(10)
    ]
    metrics.append(
        {"client_event_id": "nan", "metric_name": "acc", "value": math.nan, "step": 3,
         "labels": {"split": "val"}}
    )  # fmt: skip
    first = client.ingest_metrics(experiment_id, metrics)
    assert (first.accepted, first.duplicates) == (11, 0)
    second = client.ingest_metrics(experiment_id, metrics)
    assert (second.accepted, second.duplicates) == (0, 11)

    listing = client.list_metrics(experiment_id)
    by_name = {s.metric_name: s for s in listing.series}
    assert [p.step for p in by_name["loss"].points] == list(range(10))
    assert by_name["loss"].points[1].value == 0.5
    assert by_name["acc"].labels == {"split": "val"}
    assert [p.step for p in by_name["acc"].points] == [3]
    assert math.isnan(float(by_name["acc"].points[0].value))
    assert (
        len(client.list_metrics(experiment_id, metric_name="loss", limit=4).series[0].points) == 4
    )


def test_compare_metrics_aligns_two_experiments_by_step(client: Client) -> None:
    first = _experiment(client, "a")
    second = _experiment(client, "b")
    client.ingest_metrics(
        first, [{"metric_name": "loss", "value": float(s), "step": s} for s in range(0, 5)]
    )
    client.ingest_metrics(
        second,
        [
            {"metric_name": "loss", "value": 10.0 + s, "step": s, "labels": {"rank": str(r)}}
            for s in range(2, 7)
            for r in (0, 1)
        ],
    )
    answer = client.compare_metrics(
        [
            ComparisonMetricSeries(first, "loss"),
            ComparisonMetricSeries(second, "loss", metadata_key="rank", metadata_value="1"),
        ]
    )
    assert [(row.step, row.values) for row in answer.rows] == [
        (0, [0.0, None]),
        (1, [1.0, None]),
        (2, [2.0, 12.0]),
        (3, [3.0, 13.0]),
        (4, [4.0, 14.0]),
        (5, [None, 15.0]),
        (6, [None, 16.0]),
    ]
    limited = client.compare_metrics([ComparisonMetricSeries(first, "loss")], limit=2)
    assert [row.step for row in limited.rows] == [0, 1]
    with pytest.raises(MetricsApiRequestError) as ambiguous:
        client.compare_metrics([ComparisonMetricSeries(second, "loss")])
    assert ambiguous.value.status_code == 400
    assert "2 series match" in str(ambiguous.value)


def test_metric_catalog_and_label_values(client: Client) -> None:
    top = client.create_folder("top")
    inner = client.create_folder("inner", parent_id=top.id)
    other = client.create_folder("other")
    one = client.create_experiment(inner.id, "one").id
    two = client.create_experiment(other.id, "two").id
    client.ingest_metrics(
        one, [{"metric_name": "reward", "value": 1, "labels": {"env": "cartpole"}}]
    )
    client.ingest_metrics(
        two,
        [
            {"metric_name": "reward", "value": 2, "scale": "EPISODE", "labels": {"env": "pong"}},
            {"metric_name": "loss", "value": 0.5},
        ],
    )
    catalog = {entry.metric_name: entry for entry in client.list_metric_catalog()}
    assert sorted(catalog) == ["loss", "reward"]
    reward = catalog["reward"]
    assert (reward.scales, reward.label_keys) == (["EPISODE", "ML_STEP"], ["env"])
    assert (reward.experiments, reward.series) == (2, 2)
    under_top = client.list_metric_catalog(folder_id=top.id)
    assert [(e.metric_name, e.experiments) for e in under_top] == [("reward", 1)]
    values = client.inspect_metric_catalog_values("reward", "env")
    assert values.values == ["cartpole", "pong"]


def test_ingestion_key_revocation_takes_effect_at_once(
    client: Client, live_server: RunningServer
) -> None:
    experiment_id = _experiment(client)
    created = client.create_ingestion_key(experiment_id, name="trainer")
    assert created.secret.startswith("mti_") and created.key.prefix == created.secret[:12]
    body = encode_batch(
        "producer-1", 1, experiment_id, {("loss", "ML_STEP", "{}"): SeriesColumns([0], [1.0], [5])}
    )
    url = live_server.url + API_PREFIX + INGEST_PATH
    headers = {"Authorization": f"Bearer {created.secret}", "Content-Type": PROTOBUF_CONTENT_TYPE}
    ok = httpx.post(url, content=body, headers=headers)
    assert ok.status_code == 200
    answer = IngestResponse()
    answer.ParseFromString(ok.content)
    assert (answer.accepted, answer.duplicates, answer.replayed) == (1, 0, False)
    again = IngestResponse()
    again.ParseFromString(httpx.post(url, content=body, headers=headers).content)
    assert (again.accepted, again.replayed) == (1, True)

    revoked = client.revoke_ingestion_key(created.key.id)
    assert revoked.revoked
    refused = httpx.post(url, content=body, headers=headers)
    assert refused.status_code == 401
    listed = client.list_ingestion_keys(experiment_id)
    assert [(k.name, k.revoked) for k in listed] == [("trainer", True)]
    (key,) = listed
    assert key.revoked_at_ms == revoked.revoked_at_ms and key.revoked_at_ms is not None
    assert key.last_used_at_ms is not None  # written at its first use
    assert key.revoked_at_ms >= key.last_used_at_ms >= key.created_ns // 1_000_000
    assert len(client.list_metrics(experiment_id).series[0].points) == 1


def test_ingestion_keys_expire_and_are_then_refused_at_once(
    client: Client, live_server: RunningServer
) -> None:
    experiment_id = _experiment(client)
    default = client.create_ingestion_key(experiment_id)
    lifetime = default.key.expires_at_ms - default.key.created_ns // 1_000_000
    assert lifetime == 24 * 3600 * 1000  # the server's default: a day
    short = client.create_ingestion_key(experiment_id, "short", ttl_ms=500)
    assert short.key.expires_at_ms - short.key.created_ns // 1_000_000 == 500
    url = live_server.url + API_PREFIX + "/auth/status"
    headers = {"Authorization": f"Bearer {short.secret}"}
    assert httpx.get(url, headers=headers).status_code == 200
    wait_until(lambda: httpx.get(url, headers=headers).status_code == 401, 10)
    assert time.time() * 1000 >= short.key.expires_at_ms  # refused once its life ran out
    expired = httpx.get(url, headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


@pytest.mark.parametrize("ttl_ms", [0, -1, 7 * 24 * 3600 * 1000 + 1])
def test_a_key_lifetime_out_of_bounds_is_refused(
    client: Client, live_server: RunningServer, ttl_ms: int
) -> None:
    experiment_id = _experiment(client)
    with pytest.raises(MetranaConfigError, match="ttl_ms"):
        client.create_ingestion_key(experiment_id, ttl_ms=ttl_ms)
    refused = httpx.post(
        f"{live_server.url}{API_PREFIX}/experiments/{experiment_id}/ingestion-keys",
        json={"name": "k", "ttl_ms": ttl_ms},
        headers={"Authorization": f"Bearer {live_server.api_key}"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        f"ttl_ms must be > 0 and at most 604800000 (7 days), not {ttl_ms}"
    )
    assert client.list_ingestion_keys(experiment_id) == []


def test_a_store_of_the_first_schema_is_migrated_at_open(tmp_path: Path) -> None:
    """A store written before ingestion keys had lifetimes (schema version 1, no
    user_version) opens with every row kept, its keys given the default lifetime."""
    import sqlite3

    from metrana.storage._chunks import SCHEMA as CHUNKS_SCHEMA
    from metrana.storage._migrations import SCHEMA_VERSION
    from metrana.storage._sqlite_schema import SCHEMA

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA + CHUNKS_SCHEMA)
    old.executescript(
        "INSERT INTO workspaces VALUES (1, 'default', 1);"
        "INSERT INTO folders VALUES (1, 1, NULL, 'proj', '', 1);"
        "INSERT INTO experiments VALUES (1, 1, 1, 'run', 'finished', '', '{}', NULL, 1, 1);"
        "INSERT INTO ingestion_keys VALUES (1, 1, 'dispatcher', 'mti_abc', 'h', 5000000, NULL);"
    )
    old.commit()
    old.close()
    store = SqliteStore(path)
    try:
        (key,) = store.list_ingestion_keys(1, 1)
        assert key.expires_at_ms == 5 + 24 * 3600 * 1000
        assert (key.name, key.revoked, key.last_used_at_ms) == ("dispatcher", False, None)
        assert [r.run_name for r in store.runs()] == ["run"]
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    check.close()
    SqliteStore(path).close()  # opening it again changes nothing


def test_ingestion_key_may_not_read_or_write_elsewhere(
    client: Client, live_server: RunningServer
) -> None:
    mine = _experiment(client, "mine")
    theirs = _experiment(client, "theirs")
    secret = client.create_ingestion_key(mine).secret
    with Client(secret, host=live_server.url) as scoped:
        with pytest.raises(MetricsApiRequestError) as reading:
            scoped.list_folders()
        assert (reading.value.status_code, reading.value.error_code) == (403, "forbidden")
        status = scoped.auth_status()
        assert (status.key_kind, status.experiment_id) == ("ingestion", mine)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": PROTOBUF_CONTENT_TYPE}
    body = encode_batch("p", 1, theirs, {("x", "ML_STEP", "{}"): SeriesColumns([0], [1], [1])})
    response = httpx.post(live_server.url + API_PREFIX + INGEST_PATH, content=body, headers=headers)
    assert response.status_code == 403
    assert client.list_metrics(theirs).series == []


def test_annotations_round_trip(client: Client) -> None:
    experiment_id = _experiment(client)
    first = client.create_annotation(experiment_id, "lr decayed", step=1000, metadata={"lr": 0.01})
    second = client.create_annotation(experiment_id, "checkpoint saved", timestamp_ns=123)
    listed = client.list_annotations(experiment_id)
    assert [(a.id, a.text, a.step, a.metadata) for a in listed] == [
        (first.id, "lr decayed", 1000, {"lr": 0.01}),
        (second.id, "checkpoint saved", None, {}),
    ]
    assert listed[1].timestamp_ns == 123


def test_post_retried_after_a_dropped_response_acts_once(live_server: RunningServer) -> None:
    with FaultProxy(live_server.url) as proxy:
        proxy.set_fault(Fault.drop_response(times=1, path_prefix=API_PREFIX + "/folders"))
        with Client(live_server.api_key, host=proxy.url) as client:
            folder = client.create_folder("once")
            assert [f.name for f in client.list_folders()] == ["once"]
            proxy.set_fault(Fault.drop_response(times=1, path_prefix=API_PREFIX + "/experiments"))
            experiment = client.create_experiment(folder.id, "exp")
            assert [e.id for e in client.list_experiments()] == [experiment.id]
        posts = [r for r in proxy.requests if r.method == "POST"]
        assert [(r.path, r.fault) for r in posts] == [
            (API_PREFIX + "/folders", "drop_response"),
            (API_PREFIX + "/folders", ""),
            (API_PREFIX + "/experiments", "drop_response"),
            (API_PREFIX + "/experiments", ""),
        ]


def test_reused_idempotency_key_with_another_body_is_a_conflict(
    live_server: RunningServer,
) -> None:
    url = live_server.url + API_PREFIX + "/folders"
    headers = {"Authorization": f"Bearer {live_server.api_key}", "Idempotency-Key": "k-1"}
    first = httpx.post(url, json={"name": "a"}, headers=headers)
    replay = httpx.post(url, json={"name": "a"}, headers=headers)
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json()
    other = httpx.post(url, json={"name": "b"}, headers=headers)
    assert other.status_code == 409
    assert "already used for a different request" in other.json()["error"]["message"]


def test_protobuf_ingest_rejects_bad_input_without_writing(
    client: Client, live_server: RunningServer
) -> None:
    experiment_id = _experiment(client)
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
    assert client.list_metrics(experiment_id).series == []


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


def test_server_serves_what_was_logged_into_the_embedded_store(tmp_path: Path) -> None:
    path = str(tmp_path / "store.sqlite")
    store = SqliteStore(path)
    handle = store.open_run("research", "proj", None, "local-run", "job", allow_resume=True)
    store.write_points(
        handle.experiment_id, {("loss", "ML_STEP", "{}"): SeriesColumns([0, 1], [2.0, 1.0], [1, 2])}
    )
    store.close()
    with (
        serve_in_thread(path, workspace="research") as server,
        Client(server.api_key, host=server.url) as client,
    ):
        (experiment,) = client.list_experiments()
        assert experiment.name == "local-run"
        points = client.list_metrics(experiment.id).series[0].points
        assert [(p.step, p.value) for p in points] == [(0, 2.0), (1, 1.0)]


# -- unknown body fields and query parameters ------------------------------------------------


def _refused(response: httpx.Response) -> str:
    """The message of a 400 ``invalid_request`` answer."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"] == "code=invalid_request"
    message: str = error["message"]
    return message


def test_unknown_body_field_on_patch_is_refused_and_changes_nothing(
    client: Client, live_server: RunningServer
) -> None:
    folder = client.create_folder("kept", description="before")
    url = f"{live_server.url}{API_PREFIX}/folders/{folder.id}"
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    renamed = httpx.patch(url, json={"name": "x"}, headers=auth)
    assert _refused(renamed) == (
        'unknown field "name" in the body of PATCH /folders/{folder_id}; accepted: description'
    )
    mixed = httpx.patch(url, json={"description": "after", "name": "x"}, headers=auth)
    assert _refused(mixed) == (
        'unknown field "name" in the body of PATCH /folders/{folder_id}; accepted: description'
    )
    assert client.get_folder(folder.id) == folder
    assert client.patch_folder(folder.id, description="after").description == "after"


def test_unknown_body_fields_on_post_are_all_named_and_nothing_is_created(
    client: Client, live_server: RunningServer
) -> None:
    url = live_server.url + API_PREFIX + "/folders"
    headers = {"Authorization": f"Bearer {live_server.api_key}", "Idempotency-Key": "k-typo"}
    typos = httpx.post(url, json={"nmae": "a", "descripton": "d", "parent": None}, headers=headers)
    assert _refused(typos) == (
        'unknown fields "nmae", "descripton", "parent" in the body of POST /folders; '
        "accepted: name, parent_id, description"
    )
    one = httpx.post(url, json={"name": "a", "colour": "red"}, headers=headers)
    assert _refused(one) == (
        'unknown field "colour" in the body of POST /folders; '
        "accepted: name, parent_id, description"
    )
    assert client.list_folders() == []
    # The refused requests recorded nothing under their Idempotency-Key: it is still free.
    created = httpx.post(url, json={"name": "a"}, headers=headers)
    assert created.status_code == 200
    assert [f.name for f in client.list_folders()] == ["a"]


def test_unknown_fields_in_nested_objects_are_named_with_their_place(
    client: Client, live_server: RunningServer
) -> None:
    experiment_id = _experiment(client)
    url = f"{live_server.url}{API_PREFIX}/experiments/{experiment_id}/metrics"
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    metrics = [
        {"client_event_id": f"e{i}", "metric_name": "loss", "value": 1.0, "stpe": i}
        for i in range(5)
    ]
    response = httpx.post(url, json={"metrics": metrics, "synk": True}, headers=auth)
    assert _refused(response) == (
        'unknown field "synk" in the body of POST /experiments/{experiment_id}/metrics; '
        "accepted: metrics, sync. "
        'Also unknown field "stpe" in metrics[0], metrics[1], metrics[2] and 2 more of the body; '
        "accepted: client_event_id, metric_name, value, step, scale, labels, timestamp_ns"
    )
    assert client.list_metrics(experiment_id).series == []


def test_unknown_query_parameter_is_refused(client: Client, live_server: RunningServer) -> None:
    client.create_experiment(client.create_folder("f").id, "e")
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    typo = httpx.get(
        live_server.url + API_PREFIX + "/experiments", params={"foldr_id": 3}, headers=auth
    )
    assert _refused(typo) == (
        'unknown query parameter "foldr_id" in GET /experiments; accepted: folder_id, status'
    )
    several = httpx.get(
        live_server.url + API_PREFIX + "/experiments",
        params={"status": "running", "foldr_id": 3, "page": 2},
        headers=auth,
    )
    assert _refused(several) == (
        'unknown query parameters "foldr_id", "page" in GET /experiments; '
        "accepted: folder_id, status"
    )
    on_post = httpx.post(
        live_server.url + API_PREFIX + "/folders",
        params={"dry_run": "1"},
        json={"name": "g"},
        headers=auth,
    )
    assert _refused(on_post) == 'unknown query parameter "dry_run" in POST /folders; accepted: none'
    assert [f.name for f in client.list_folders()] == ["f"]
    listed = httpx.get(
        live_server.url + API_PREFIX + "/experiments", params={"status": "running"}, headers=auth
    )
    assert listed.status_code == 200
    assert [e["name"] for e in listed.json()["data"]["items"]] == ["e"]


def test_valid_requests_still_decode_every_field(
    client: Client, live_server: RunningServer
) -> None:
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    url = live_server.url + API_PREFIX
    top = httpx.post(url + "/folders", json={"name": "top"}, headers=auth)
    assert top.status_code == 200, top.text
    folder = httpx.post(
        url + "/folders",
        json={"name": "sub", "parent_id": top.json()["data"]["id"], "description": "d"},
        headers=auth,
    )
    assert folder.status_code == 200, folder.text
    assert (folder.json()["data"]["path"], folder.json()["data"]["description"]) == (
        ["top", "sub"],
        "d",
    )
    experiment_id = _experiment(client, folder="top")
    ingested = httpx.post(
        f"{url}/experiments/{experiment_id}/metrics",
        json={
            "metrics": [
                {"client_event_id": "a", "metric_name": "loss", "value": "nan", "step": 2,
                 "scale": "EPISODE", "labels": {"rank": "0"}, "timestamp_ns": 5}
            ],
            "sync": True,
        },
        headers=auth,
    )  # fmt: skip
    assert (ingested.status_code, ingested.json()["data"]["accepted"]) == (200, 1)
    (series,) = client.list_metrics(experiment_id).series
    assert (series.scale, series.labels, series.points[0].step) == ("EPISODE", {"rank": "0"}, 2)
    compared = client.compare_metrics(
        [ComparisonMetricSeries(experiment_id, "loss", metadata_key="rank", metadata_value="0")]
    )
    assert compared.series[0].metadata_value == "0"
    missing = httpx.post(url + "/folders", json={"description": "no name"}, headers=auth)
    assert _refused(missing) == "invalid body: Object missing required field `name`"


def test_routes_outside_the_table_keep_ignoring_query_parameters(
    client: Client, live_server: RunningServer
) -> None:
    experiment_id = _experiment(client)
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


def test_answers_are_in_the_envelope_and_errors_carry_their_code(
    live_server: RunningServer,
) -> None:
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    status = httpx.get(live_server.url + API_PREFIX + "/auth/status", headers=auth)
    assert status.status_code == 200
    assert set(status.json()) == {"data", "error"} and status.json()["error"] is None
    assert status.json()["data"]["workspace_name"] == "default"
    missing = httpx.get(live_server.url + API_PREFIX + "/folders/999", headers=auth)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"message": "no folder 999 in this workspace", "details": "code=not_found"}
    }


def test_a_repeat_of_a_request_still_running_is_told_to_retry(tmp_path: Path) -> None:
    """While the first request with an Idempotency-Key is acted on, a repeat gets 409
    idempotency_key_in_progress (retryable); once it is done, the repeat gets its answer."""
    import asyncio

    from metrana.server import create_app

    store = SqliteStore(tmp_path / "held.sqlite")
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
    assert answered.status_code == 200 and answered.json()["data"]["name"] == "slow"
    assert again.json() == answered.json()


def test_compare_reads_only_what_its_limit_needs_and_still_aligns_exactly(
    tmp_path: Path,
) -> None:
    """Two series of interleaved steps: the first ``limit`` steps of their union, each with
    the value of every series that has it (each series is read only up to ``limit`` points)."""
    from metrana.api import _types as t

    store = SqliteStore(tmp_path / "cmp.sqlite")
    try:
        ids = []
        for run, steps in (("even", range(0, 40, 2)), ("every3", range(0, 60, 3))):
            handle = store.open_run("default", "p", None, run, "job", allow_resume=True)
            columns = SeriesColumns(list(steps), [float(s) for s in steps], [1] * len(steps))
            store.write_batch(run, 1, handle.experiment_id, {("m", "ML_STEP", "{}"): columns})
            ids.append(handle.experiment_id)
        workspace = store.workspace_id("default")
        pair = [t.ComparisonMetricSeries(i, "m") for i in ids]
        answer = store.compare_metrics(workspace, t.CompareRequest(pair, limit=7))
    finally:
        store.close()
    assert [(r.step, r.values) for r in answer.rows] == [
        (0, [0.0, 0.0]),
        (2, [2.0, None]),
        (3, [None, 3.0]),
        (4, [4.0, None]),
        (6, [6.0, 6.0]),
        (8, [8.0, None]),
        (9, [None, 9.0]),
    ]
