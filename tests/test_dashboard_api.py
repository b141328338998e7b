"""The dashboard's server side: downsampled chart series, login tokens and sessions, the page
and its bundled uPlot (the browser tests are in test_dashboard_browser.py)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import httpx
import pytest
from conftest import ENGINES

from metrana.api import Client
from metrana.server._dashboard import STATIC
from metrana.storage import SeriesColumns, open_store
from metrana.testing import RunningServer

T0 = 1_700_000_000_000_000_000


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seed(store_path: str, run: str, series: dict[tuple[str, str], list[float]]) -> str:
    """A run of the ``default`` organization with ``{(metric, labels json): values}`` (steps
    from 0); its experiment id."""
    store = open_store(store_path)
    try:
        handle = store.open_run("default", "proj", None, run, "job", allow_resume=True)
        batch = {
            (name, "ML_STEP", labels): SeriesColumns(
                list(range(len(values))),
                list(values),
                [T0 + step * 1_000_000 for step in range(len(values))],
            )
            for (name, labels), values in series.items()
        }
        store.write_points(handle.experiment_id, batch)
        return str(handle.experiment_id)
    finally:
        store.close()


def test_chart_series_downsample_keeping_ends_and_marking_non_finite(
    live_server: RunningServer, client: Client
) -> None:
    values = [math.sin(i / 50) for i in range(10_000)]
    values[3] = values[4] = math.nan
    values[7000] = math.inf
    values[9999] = -math.inf
    experiment = seed(
        live_server.store_path,
        "r",
        {("train/loss", '{"rank":"0"}'): values, ("train/loss", '{"rank":"1"}'): [1.0, 2.0]},
    )
    answer = client.chart_series(experiment, width=100)
    assert answer.width == 100
    big, small = answer.series
    assert (big.metric_name, big.metadata, big.total_points) == (
        "train/loss",
        {"rank": "0"},
        10_000,
    )
    assert len(big.steps) == len(big.values) == len(big.times_ms) == 100
    assert big.steps[0] == 0 and big.steps[-1] == 9998  # the last finite point
    assert big.steps == sorted(big.steps)
    assert big.times_ms[1] == T0 // 1_000_000 + big.steps[1]
    assert [tuple(m.__struct_fields__) for m in big.marks][:1] == [
        ("first_step", "last_step", "value")
    ]
    assert [(m.first_step, m.last_step, m.value) for m in big.marks] == [
        (3, 4, "nan"), (7000, 7000, "inf"), (9999, 9999, "-inf")
    ]  # fmt: skip
    assert (small.steps, small.values) == ([0, 1], [1.0, 2.0])
    assert (big.first_step, big.last_step) == (0, 9999)

    zoomed = client.chart_series(experiment, ["train/loss"], width=100, from_step=100, to_step=149)
    assert zoomed.series[0].steps == list(range(100, 150))  # the detail of the range
    assert zoomed.series[1].steps == []
    assert client.chart_series(experiment, ["nothing"]).series == []


def test_summaries_count_points_and_give_last_values(
    live_server: RunningServer, client: Client
) -> None:
    one = seed(
        live_server.store_path,
        "one",
        {("loss", '{"rank":"0"}'): [3.0, 2.0, 1.0], ("loss", '{"rank":"1"}'): [4.0, math.nan],
         ("acc", "{}"): [0.5] * 5},
    )  # fmt: skip
    two = seed(live_server.store_path, "two", {("acc", "{}"): [0.1, 0.2]})
    empty = client.create_experiment("empty").experiment.id
    found = {
        s.experiment_id: s for s in client.experiment_summaries(metric_names=["loss"]).summaries
    }
    assert set(found) == {one, two, empty}
    assert (found[one].series, found[one].points) == (3, 10)
    assert [(v.metric_name, v.metadata, v.step, v.value) for v in found[one].last_values] == [
        ("loss", {"rank": "0"}, 2, 1.0), ("loss", {"rank": "1"}, 1, "nan")
    ]  # fmt: skip
    assert (found[two].points, found[two].last_values) == (2, [])
    assert (found[empty].series, found[empty].points) == (0, 0)
    only = client.experiment_summaries([two], ["acc", "loss"]).summaries
    assert [(s.experiment_id, [v.value for v in s.last_values]) for s in only] == [(two, [0.2])]
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    url = f"{live_server.url}/api/v1/experiment-summaries"
    many = [("metric_name", str(i)) for i in range(21)]
    assert httpx.get(url, params=many, headers=headers).status_code == 400


def test_chart_series_follow_the_api_conventions(live_server: RunningServer) -> None:
    experiment = seed(live_server.store_path, "r", {("loss", "{}"): [1.0]})
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    url = f"{live_server.url}/api/v1/experiments/{experiment}/charts"
    ok = httpx.get(url, params={"width": 10}, headers=headers)
    assert ok.status_code == 200 and ok.json()["error"] is None
    assert ok.json()["data"]["series"][0]["values"] == [1.0]
    unknown = httpx.get(url, params={"pixels": 10}, headers=headers)
    assert unknown.status_code == 400 and "pixels" in unknown.json()["error"]["message"]
    for too_narrow in (1, 2):  # the downsampler needs 3 (first, last, one between)
        assert httpx.get(url, params={"width": too_narrow}, headers=headers).status_code == 400
    assert httpx.get(url).status_code == 401
    spec = httpx.get(f"{live_server.url}/api/v1/openapi.json").json()
    assert "/api/v1/experiments/{experiment_id}/charts" in spec["paths"]
    assert "/api/v1/auth/login-tokens" in spec["paths"]


def test_a_login_url_works_once_and_its_session_reads_and_writes_with_csrf(
    live_server: RunningServer, client: Client
) -> None:
    experiment = seed(live_server.store_path, "r", {("loss", "{}"): [1.0]})
    with httpx.Client(base_url=live_server.url) as browser:
        assert browser.get("/api/v1/experiments").status_code == 401  # no session
        first = browser.get(live_server.login_url)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookies = first.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("metrana_session="))
        assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
        assert browser.get("/api/v1/experiments").status_code == 200
        status = browser.get("/api/v1/auth/status").json()["data"]
        assert status["auth"]["kind"] == "session"
        assert browser.get(f"/api/v1/experiments/{experiment}/charts").status_code == 200
        # a write needs the CSRF token that the page can read from its cookie
        body = {"name": "from the dashboard"}
        assert browser.post("/api/v1/folders", json=body).status_code == 403
        csrf = browser.cookies["metrana_csrf"]
        made = browser.post("/api/v1/folders", json=body, headers={"X-Metrana-CSRF": csrf})
        assert made.status_code == 200, made.text
        # a session may not mint login tokens (only an API key may)
        minted = browser.post(
            "/api/v1/auth/login-tokens", json={}, headers={"X-Metrana-CSRF": csrf}
        )
        assert minted.status_code == 403
        assert browser.post("/logout", headers={"X-Metrana-CSRF": csrf}).status_code == 200
        assert browser.get("/api/v1/experiments").status_code == 401
    with httpx.Client(base_url=live_server.url) as other:
        again = other.get(live_server.login_url)
        assert again.status_code == 401 and "does not work" in again.text
        assert "metrana_session" not in other.cookies
        other.cookies.set("metrana_session", "forged")
        assert other.get("/api/v1/experiments").status_code == 401
    login = client.create_login_token(ttl_ms=60_000).login
    assert login.url.startswith(live_server.url + "/login?token=mtl_")
    with httpx.Client(base_url=live_server.url) as browser:
        assert browser.get(login.url).status_code == 303
        assert browser.get("/api/v1/experiments").status_code == 200


def test_an_api_key_logs_in_from_the_page(live_server: RunningServer) -> None:
    with httpx.Client(base_url=live_server.url) as browser:
        assert browser.post("/login", json={"api_key": "wrong"}).status_code == 401
        other_site = {"Origin": "https://evil.example"}
        refused = browser.post("/login", json={"api_key": live_server.api_key}, headers=other_site)
        assert refused.status_code == 403
        assert browser.post("/login", json={"api_key": live_server.api_key}).status_code == 200
        assert browser.get("/api/v1/experiments").status_code == 200


def test_the_page_and_its_modules_are_served(live_server: RunningServer) -> None:
    for path in ("/", "/experiments/1", "/compare"):
        page = httpx.get(live_server.url + path)
        assert page.status_code == 200 and '<script type="module"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(live_server.url + "/static/vendor/uPlot.esm.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_the_bundled_uplot_matches_its_checksums() -> None:
    vendor = Path(STATIC) / "vendor"
    lines = (vendor / "UPLOT.sha256").read_text().splitlines()
    assert lines[0].startswith("# uplot@")
    sums = dict(reversed(line.split("  ")) for line in lines[1:])
    assert set(sums) == {"uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE"}
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "MIT" in (vendor / "uPlot.LICENSE").read_text()


@pytest.mark.parametrize("missing", ["index.html", "app.js", "style.css"])
def test_the_dashboard_files_exist(missing: str) -> None:
    assert (Path(STATIC) / missing).is_file()
