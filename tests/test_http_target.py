"""The dispatcher's HTTP target on its own, against a real server behind the fault proxy: a
batch in flight is kept only as its protobuf body, so a failure must give the whole batch back
for the spool, and a batch over the server's size limit goes in halves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from metrana._config import resolve_config
from metrana.api import Client
from metrana.api._routes import API_PREFIX, INGEST_PATH
from metrana.dispatcher.targets import DeliveryFailure, RejectedBatch
from metrana.dispatcher.targets._http import HttpTarget
from metrana.storage import SeriesColumns, SeriesKey
from metrana.testing import Fault, FaultProxy, RunningServer, read_rows

INGEST = API_PREFIX + INGEST_PATH
T0 = 1_700_000_000_000_000_000


def _batch() -> dict[SeriesKey, SeriesColumns]:
    """Two series: one of floats, one mixing ints and floats, one with labels."""
    return {
        ("loss", "ML_STEP", "{}"): SeriesColumns(
            list(range(100)), [i / 7 for i in range(100)], [T0 + i for i in range(100)]
        ),
        ("reward", "EPISODE", '{"env":"cartpole"}'): SeriesColumns(
            [0, 1, 2, 3], [1, 2.5, 3, -4], [T0, T0 + 1, T0 + 2, T0 + 3]
        ),
    }


@pytest.fixture
def proxy(live_server: RunningServer) -> Iterator[FaultProxy]:
    with FaultProxy(live_server.url) as running:
        yield running


@pytest.fixture
def target(
    isolated: Path, proxy: FaultProxy, live_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HttpTarget]:
    monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "0.5")
    config = resolve_config(
        api_key=live_server.api_key,
        workspace_name="default",
        project_name="proj",
        run_name="target-run",
        ingestion_url=proxy.url,
    )
    http = HttpTarget(config)
    http.open_run(config)
    yield http
    http.close()


def _stored(client: Client) -> dict[tuple[str, str], list[tuple[int, float]]]:
    (experiment,) = client.list_experiments().experiments
    stored: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in read_rows(client, experiment.id):
        assert row.step is not None
        stored.setdefault((row.metric_name, row.scale), []).append((row.step, row.metric_value))
    return stored


def _ingest_statuses(proxy: FaultProxy) -> list[int]:
    return [r.status for r in proxy.requests if r.path == INGEST]


def test_a_failed_batch_gives_back_exactly_the_batch_it_was_given(
    target: HttpTarget, proxy: FaultProxy, client: Client
) -> None:
    proxy.set_fault(Fault.status_code(503, path_prefix=INGEST))
    error = target.submit(_batch()).exception(timeout=30)
    assert type(error) is DeliveryFailure
    assert "503" in str(error)
    assert error.undelivered is not None
    given_back = error.undelivered()
    assert given_back == _batch()
    assert [type(v) for v in given_back[("reward", "EPISODE", '{"env":"cartpole"}')].values] == [
        int,
        float,
        int,
        int,
    ]
    assert _ingest_statuses(proxy) == [503, 503]
    assert _stored(client) == {}

    proxy.set_fault(None)
    result = target.submit(given_back).result(timeout=30)
    assert (result.accepted, result.duplicates) == (104, 0)
    stored = _stored(client)
    assert stored[("loss", "ML_STEP")] == [(i, i / 7) for i in range(100)]
    assert stored[("reward", "EPISODE")] == [(0, 1), (1, 2.5), (2, 3), (3, -4)]


def test_a_batch_over_the_size_limit_is_sent_in_halves(
    target: HttpTarget, proxy: FaultProxy, client: Client
) -> None:
    proxy.set_fault(Fault.status_code(413, times=1, path_prefix=INGEST))
    result = target.submit(_batch()).result(timeout=30)
    assert (result.accepted, result.duplicates) == (104, 0)
    assert _ingest_statuses(proxy) == [413, 200, 200]
    assert {k: len(v) for k, v in _stored(client).items()} == {
        ("loss", "ML_STEP"): 100,
        ("reward", "EPISODE"): 4,
    }


def test_a_half_that_fails_gives_back_the_whole_batch(
    target: HttpTarget, proxy: FaultProxy, client: Client
) -> None:
    # the first half is stored, the second fails: the whole batch comes back, and sending it
    # again stores the second half once and recognises the first
    proxy.set_fault(
        Fault.status_code(413, times=1, path_prefix=INGEST).followed_by(
            Fault.forward(times=1, path_prefix=INGEST).followed_by(
                Fault.status_code(503, path_prefix=INGEST)
            )
        )
    )
    error = target.submit(_batch()).exception(timeout=30)
    assert type(error) is DeliveryFailure
    assert error.undelivered is not None
    assert error.undelivered() == _batch()
    assert _ingest_statuses(proxy) == [413, 200, 503, 503]
    assert {k: len(v) for k, v in _stored(client).items()} == {("loss", "ML_STEP"): 100}

    proxy.set_fault(None)
    result = target.submit(error.undelivered()).result(timeout=30)
    assert (result.accepted, result.duplicates) == (4, 100)


def test_a_single_point_over_the_size_limit_is_rejected_for_good(
    target: HttpTarget, proxy: FaultProxy
) -> None:
    proxy.set_fault(Fault.status_code(413, path_prefix=INGEST))
    one = {("loss", "ML_STEP", "{}"): SeriesColumns([0], [1.0], [T0])}
    error = target.submit(one).exception(timeout=30)
    assert type(error) is RejectedBatch
    assert str(error) == "a single point is larger than the server's size limit"
    assert error.status == 413


def test_a_rejected_half_does_not_stop_the_other_half(
    target: HttpTarget, proxy: FaultProxy, client: Client
) -> None:
    # 413 for the whole batch, then 400 for its first half (loss): the second half (reward)
    # is still sent and stored, and the result counts the rejected points
    proxy.set_fault(
        Fault.status_code(413, times=1, path_prefix=INGEST).followed_by(
            Fault.status_code(400, times=1, path_prefix=INGEST)
        )
    )
    result = target.submit(_batch()).result(timeout=30)
    assert (result.accepted, result.duplicates, result.rejected) == (4, 0, 100)
    assert _ingest_statuses(proxy) == [413, 400, 200]
    assert {k: len(v) for k, v in _stored(client).items()} == {("reward", "EPISODE"): 4}


def test_the_64_bit_integer_limits_cross_the_wire_exactly(
    target: HttpTarget, client: Client
) -> None:
    top = 2**63 - 1
    batch = {
        ("count", "ML_STEP", "{}"): SeriesColumns([0, top], [-(2**63), top], [0, top]),
    }
    assert target.submit(batch).result(timeout=30).accepted == 2
    assert _stored(client) == {("count", "ML_STEP"): [(0, -(2**63)), (top, top)]}
