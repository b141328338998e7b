"""Hostile input: the REST API fuzzed from its own OpenAPI document (schemathesis), and the
ingestion endpoint fed malformed protobuf, oversized bodies and wrong content types.

No answer may be a 5xx, and nothing malformed may be written."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from metrana.api._routes import API_PREFIX, INGEST_PATH, PROTOBUF_CONTENT_TYPE
from metrana.proto._codec import encode_batch
from metrana.server import create_app
from metrana.storage import SeriesColumns, SqliteStore
from metrana.testing import RunningServer, serve_in_thread

_DIR = Path(tempfile.mkdtemp(prefix="metrana-fuzz-"))
atexit.register(shutil.rmtree, _DIR, True)
STORE = SqliteStore(_DIR / "fuzz.sqlite")
atexit.register(STORE.close)  # registered last: runs first
_, API_KEY = STORE.create_api_key("default", "fuzz")
_HANDLE = STORE.open_run("default", "proj", None, "fuzzed", "job", allow_resume=True)
EXPERIMENT = _HANDLE.experiment_id
MAX_BODY = 64 * 1024
APP = create_app(STORE, max_body_bytes=MAX_BODY)
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# The protobuf ingestion body is raw bytes to schemathesis (the malformed-protobuf tests below
# go further).
schemathesis.openapi.media_type(PROTOBUF_CONTENT_TYPE, st.binary(max_size=512))
schema = schemathesis.openapi.from_asgi(API_PREFIX + "/openapi.json", APP)


@schema.parametrize()
@hypothesis.settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_rest_api_never_answers_5xx(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (case.method, case.path, response.text)
    if response.status_code == 200:
        assert response.headers["content-type"][0] in ("application/json", PROTOBUF_CONTENT_TYPE)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """A live server over the same store (another connection), for the ingestion tests."""
    with serve_in_thread(str(_DIR / "fuzz.sqlite"), max_body_bytes=MAX_BODY) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.url + API_PREFIX, headers=headers) as client:
        yield client


def _points() -> int:
    return STORE.count_points()


@hypothesis.settings(max_examples=120, deadline=None, derandomize=True)
@given(body=st.binary(max_size=2048))
def test_random_bytes_to_ingestion_get_4xx_and_write_nothing(
    http: httpx.Client, body: bytes
) -> None:
    before = _points()
    response = http.post(INGEST_PATH, content=body, headers={"Content-Type": PROTOBUF_CONTENT_TYPE})
    assert response.status_code in (200, 400, 403, 404), response.text
    if response.status_code != 200:
        assert response.json()["error"]["details"] in (
            "code=invalid_batch",
            "code=forbidden",
            "code=not_found",
        )
        assert _points() == before


def _valid_batch(sequence: int, steps: list[int]) -> bytes:
    columns = SeriesColumns(steps, [float(s) for s in steps], [1] * len(steps))
    return encode_batch("fuzzer", sequence, EXPERIMENT, {("m", "ML_STEP", "{}"): columns})


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True)
@given(cut=st.integers(min_value=1, max_value=200), flip=st.integers(min_value=0, max_value=255))
def test_truncated_or_corrupted_batches_are_refused_whole(
    http: httpx.Client, cut: int, flip: int
) -> None:
    body = bytearray(_valid_batch(10_000 + cut, list(range(1000, 1020))))
    body = body[: max(1, len(body) - cut)]
    body[len(body) // 2] ^= flip
    before = _points()
    response = http.post(
        INGEST_PATH, content=bytes(body), headers={"Content-Type": PROTOBUF_CONTENT_TYPE}
    )
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert _points() == before  # all or nothing


def test_wrong_content_type_and_oversized_bodies(http: httpx.Client) -> None:
    before = _points()
    for content_type in ("application/json", "text/plain", ""):
        response = http.post(
            INGEST_PATH, content=_valid_batch(1, [0]), headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, content_type
    too_big = http.post(
        INGEST_PATH,
        content=b"\x00" * (MAX_BODY + 1),
        headers={"Content-Type": PROTOBUF_CONTENT_TYPE},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["details"] == "code=payload_too_large"
    assert http.post("/folders", content=b"{" * (MAX_BODY + 10)).status_code == 413
    not_json = http.post("/folders", content=b"\xff\xfe")
    assert (not_json.status_code, not_json.json()["error"]["details"]) == (
        400,
        "code=invalid_request",
    )
    assert http.get(f"/folders/{2**70}").status_code in (400, 404)
    assert _points() == before
