"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright for
Python; never a browser Playwright downloads). One browser serves every test of this module;
each test gets a fresh context (no cookies). Screenshots are saved under the session's
pytest temporary directory, in ``screenshots/``."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metrana.api import _types as t
from metrana.storage import SeriesColumns, SqliteStore
from metrana.testing import RunningServer

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T0 = 1_700_000_000_000_000_000
pytestmark = pytest.mark.slow  # a browser is a process


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for every test here; stopped after them, since Playwright's event loop
    would otherwise stay current for the rest of the session (and break asyncio.run)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def curve(n: int, seed: int, start: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [start * math.exp(-i / (n / 4)) + 0.05 * rng.random() for i in range(n)]


class Seeder:
    """Runs of the ``default`` organization written straight into the server's store."""

    def __init__(self, store_path: str) -> None:
        self.store = SqliteStore(store_path)

    def run(self, name: str, metadata: dict[str, Any] | None = None) -> int:
        handle = self.store.open_run(
            "default", "vision", "resnet", name, "job-" + name, allow_resume=True,
            metadata=metadata,
        )  # fmt: skip
        return handle.experiment_id

    def log(
        self, experiment: int, series: dict[tuple[str, str], list[float]], first: int = 0
    ) -> None:
        batch = {
            (name, "ML_STEP", labels): SeriesColumns(
                list(range(first, first + len(values))),
                list(values),
                [T0 + (first + i) * 10**9 for i in range(len(values))],
            )
            for (name, labels), values in series.items()
        }
        self.store.write_points(experiment, batch)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def seeder(live_server: RunningServer) -> Iterator[Seeder]:
    seeder = Seeder(live_server.store_path)
    yield seeder
    seeder.close()


def log_in(page: Any, server: RunningServer) -> None:
    answer = page.goto(server.login_url)
    assert answer.status == 200 and page.url == server.url + "/"


def charts_ready(page: Any) -> None:
    page.wait_for_selector("#charts[data-ready='true']")


def test_run_page_shows_one_chart_per_metric_with_its_series_and_last_values(
    live_server: RunningServer, seeder: Seeder, page: Any, screenshots: Path
) -> None:
    run = seeder.run("baseline", {"lr": 0.001, "optimizer": "adam"})
    seeder.log(run, {
        ("train/loss", '{"rank":"0"}'): curve(500, 1),
        ("train/loss", '{"rank":"1"}'): curve(500, 2, 2.2),
        ("train/accuracy", "{}"): [1 - v / 3 for v in curve(500, 3)],
        ("system/gpu_memory", "{}"): [float(1000 + i % 50) for i in range(500)],
    })  # fmt: skip
    other = seeder.run("warmup-sweep")
    seeder.log(other, {("train/loss", "{}"): curve(300, 4)})
    seeder.store.set_status(other, "done")
    log_in(page, live_server)
    page.wait_for_selector("table.experiments tbody tr")
    assert page.locator("table.experiments tbody tr").count() == 2
    # the home table: point counts, a column per metadata key, last values of chosen metrics
    page.goto(f"{live_server.url}/?m=train/loss")
    row = page.locator(f'table.experiments tbody tr[data-id="{run}"]')
    assert row.locator('[data-col="points"]').inner_text() == "2,000"
    assert row.locator('[data-col="k:lr"]').inner_text() == "0.001"
    assert row.locator('[data-col="k:optimizer"]').inner_text() == "adam"
    shown = float(row.locator('[data-col="m:train/loss"]').inner_text())
    assert shown == pytest.approx(curve(500, 1)[-1], rel=1e-4)  # rank 0's, of two series
    done = page.locator(f'table.experiments tbody tr[data-id="{other}"]')
    assert done.locator('[data-col="points"]').inner_text() == "300"
    assert float(done.locator('[data-col="m:train/loss"]').inner_text()) == pytest.approx(
        curve(300, 4)[-1], rel=1e-4
    )
    page.locator('input[aria-label="Metrics whose last values to show"]').fill("nothing")
    page.keyboard.press("Enter")
    page.wait_for_selector('th >> text="nothing"')
    assert row.locator('[data-col="m:nothing"]').inner_text() == "\u2013"  # a dash: no value
    page.goto(f"{live_server.url}/?m=train/loss&m=train/accuracy")
    page.wait_for_selector("table.experiments tbody tr")
    page.screenshot(path=str(screenshots / "home.png"), full_page=True)

    page.goto(f"{live_server.url}/experiments/{run}")
    charts_ready(page)
    cards = page.locator(".card")
    assert sorted(cards.evaluate_all("cs => cs.map(c => c.dataset.metric)")) == [
        "system/gpu_memory", "train/accuracy", "train/loss"
    ]  # fmt: skip
    groups = page.locator("details.group").evaluate_all("ds => ds.map(d => d.dataset.group)")
    assert groups == ["system", "train"]
    found = {
        c["metric"]: (int(c["series"]), c["last"])
        for c in cards.evaluate_all("cs => cs.map(c => ({...c.dataset}))")
    }
    assert found["train/loss"] == (2, f"[{curve(500, 1)[-1]!r},{curve(500, 2, 2.2)[-1]!r}]")
    assert found["system/gpu_memory"] == (1, "[1049]")
    # uPlot drew each series: a legend row per series (plus the x axis)
    legend = page.locator('.card[data-metric="train/loss"] .u-legend .u-series')
    assert legend.count() == 3
    assert page.locator('[data-testid="status"]').inner_text().strip() == "running"
    page.screenshot(path=str(screenshots / "run.png"), full_page=True)

    # on a phone the page fits its width
    page.set_viewport_size({"width": 390, "height": 844})
    fits = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    page.wait_for_function(f"() => {fits}")  # once laid out again (the context's timeout)
    assert page.evaluate(fits)
    page.screenshot(path=str(screenshots / "run-phone.png"))


def test_compare_view_overlays_two_runs_and_its_url_holds_the_view(
    live_server: RunningServer, seeder: Seeder, page: Any, screenshots: Path
) -> None:
    first, second = seeder.run("lr-1e-3"), seeder.run("lr-3e-4")
    seeder.log(first, {("train/loss", "{}"): curve(400, 1), ("eval/reward", "{}"): curve(40, 5)})
    seeder.log(
        second, {("train/loss", "{}"): curve(400, 2, 1.5), ("eval/reward", "{}"): curve(40, 6)}
    )
    log_in(page, live_server)
    page.wait_for_selector("table.experiments tbody tr")
    for box in page.locator("table.experiments tbody input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url("**/compare?**")
    charts_ready(page)
    loss = page.locator('.card[data-metric="train/loss"]')
    assert loss.get_attribute("data-series") == "2"
    labels = loss.locator(".u-legend .u-series .u-label").all_inner_texts()
    assert sorted(labels[1:]) == ["lr-1e-3", "lr-3e-4"]
    page.select_option("#x-axis", "relative")
    page.wait_for_function("() => location.search.includes('x=relative')")
    shared = page.url
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)
    page.goto(shared)  # the URL alone brings the same view back
    charts_ready(page)
    assert page.locator("#x-axis").input_value() == "relative"
    assert page.locator(".card").count() == 2


def test_live_refresh_shows_points_logged_after_the_page_opened(
    live_server: RunningServer, seeder: Seeder, page: Any
) -> None:
    run = seeder.run("live")
    seeder.log(run, {("train/loss", "{}"): [3.0, 2.0, 1.0]})
    log_in(page, live_server)
    page.goto(f"{live_server.url}/experiments/{run}")
    charts_ready(page)
    card = page.locator('.card[data-metric="train/loss"]')
    assert card.get_attribute("data-last") == "[1]"
    logged = time.monotonic()
    seeder.log(run, {("train/loss", "{}"): [0.5, 0.25]}, first=3)
    page.wait_for_function(
        "() => document.querySelector('.card[data-metric=\"train/loss\"]').dataset.last"
        " === '[0.25]'",
        timeout=4000,
    )
    assert time.monotonic() - logged <= 2.5  # the promise is 2 s; a little slack for CI load
    seeder.log(run, {("train/new_metric", "{}"): [7.0]})
    page.wait_for_selector('.card[data-metric="train/new_metric"]', timeout=4000)


def test_a_login_url_works_once_and_no_session_gets_401(
    live_server: RunningServer, browser: Any
) -> None:
    first = browser.new_context()
    second = browser.new_context()
    try:
        page = first.new_page()
        log_in(page, live_server)
        page.wait_for_selector("table.experiments")
        again = second.new_page()
        answer = again.goto(live_server.login_url)
        assert answer.status == 401 and "does not work" in again.content()
        assert second.request.get(live_server.url + "/api/v1/experiments").status == 401
        assert first.request.get(live_server.url + "/api/v1/experiments").status == 200
        again.goto(live_server.url + "/")
        again.wait_for_selector("form.login")  # the page asks to log in
        again.fill("#api-key", live_server.api_key)
        again.get_by_role("button", name="Log in").click()
        again.wait_for_selector("table.experiments")
    finally:
        first.close()
        second.close()


def chart_data(card: Any, name: str) -> Any:
    return json.loads(card.get_attribute(f"data-{name}"))


def test_zoom_smoothing_log_scale_downloads_and_annotations(
    live_server: RunningServer, seeder: Seeder, page: Any, tmp_path: Path
) -> None:
    run = seeder.run("views")
    score = [1.0, 2.0, 4.0, 8.0, 16.0]
    seeder.log(run, {("train/loss", "{}"): [100.0 - i for i in range(100)],
                     ("eval/score", "{}"): score})  # fmt: skip
    org = seeder.store.organization_id("default")
    seeder.store.create_annotation(org, run, t.AnnotationCreate("lr drop", {"step": 50}))
    log_in(page, live_server)
    page.goto(f"{live_server.url}/experiments/{run}")
    charts_ready(page)
    loss = page.locator('.card[data-metric="train/loss"]')
    evals = page.locator('.card[data-metric="eval/score"]')
    page.wait_for_function("() => document.querySelector('.card[data-x-range]')")
    assert loss.get_attribute("data-annotations") == "1"  # the marker at step 50
    assert evals.get_attribute("data-annotations") == "0"  # step 50 is beyond its steps

    # CSV: the chart's data, exactly; PNG: an image of the chart
    with page.expect_download() as csv:
        evals.get_by_role("button", name="CSV").click()
    assert csv.value.suggested_filename == "eval_score.csv"
    rows = Path(csv.value.path()).read_text().splitlines()
    assert rows == ['step,"value"', "0,1", "1,2", "2,4", "3,8", "4,16"]
    with page.expect_download() as png:
        evals.get_by_role("button", name="PNG").click()
    image = Path(png.value.path()).read_bytes()
    assert png.value.suggested_filename == "eval_score.png"
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 2000

    # drag to zoom (the server sends the range's detail), double-click to reset
    assert chart_data(loss, "x-range") == [0, 99]
    box = loss.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=4)
    page.mouse.up()
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('.card[data-metric=\"train/loss\"]')"
        ".dataset.xRange)[1] < 60"
    )
    low, high = chart_data(loss, "x-range")
    assert 20 <= low < high <= 55
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('.card[data-metric=\"train/loss\"]')"
        ".dataset.xRange)[1] === 99"
    )
    assert chart_data(loss, "x-range") == [0, 99]

    # EMA smoothing changes the drawn values (TensorBoard's, debiased)
    assert chart_data(evals, "drawn-last") == [16]
    page.eval_on_selector(
        "#smoothing", "s => { s.value = '0.9'; s.dispatchEvent(new Event('change')); }"
    )
    page.wait_for_function("() => location.search.includes('smoothing=0.9')")
    (smoothed,) = chart_data(page.locator('.card[data-metric="eval/score"]'), "drawn-last")
    assert smoothed == pytest.approx(ema(score, 0.9)[-1])
    assert chart_data(page.locator('.card[data-metric="eval/score"]'), "annotations") == 0

    # log scale
    assert loss.get_attribute("data-y-distr") == "1"
    page.locator("#log-scale").check()
    page.wait_for_function("() => location.search.includes('log=1')")
    assert page.locator('.card[data-metric="train/loss"]').get_attribute("data-y-distr") == "3"


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, debiased, as the page computes it."""
    last, smoothed = 0.0, []
    for n, value in enumerate(values, 1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**n))
    return smoothed
