"""The dashboard measured in a real headless Chromium against ``metrana serve`` in its own
process: the run page of a run with one long series drawn from navigation, the compare view
of ten runs, and the downsampling endpoint (``chart_series``) answering a long series for a
2,000-pixel chart.

Times in the browser are ``performance.now()`` when the board is drawn (the page sets
``data-ready-at`` after uPlot's frame), that is milliseconds since navigation started."""

from __future__ import annotations

import shutil
from typing import Any

from metrana.api import Client
from metrana.storage import SeriesColumns, SqliteStore

from .context import Bench
from .processes import Server
from .rest import _median_ms

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
FILL_CHUNK = 100_000
COMPARED_RUNS = 10
T0 = 1_700_000_000_000_000_000


def _fill(store: SqliteStore, name: str, points: int) -> str:
    handle = store.open_run("default", "dashboard", None, name, "bench", allow_resume=True)
    for start in range(0, points, FILL_CHUNK):
        steps = list(range(start, min(start + FILL_CHUNK, points)))
        values = [1.0 / (1 + s * 1e-4) + (s % 37) * 1e-3 for s in steps]
        columns = SeriesColumns(steps, values, [T0 + s * 10**6 for s in steps])
        store.write_points(handle.experiment_id, {("train/loss", "ML_STEP", "{}"): columns})
    return str(handle.experiment_id)


def _drawn_ms(page: Any, url: str) -> float:
    page.goto(url)
    page.wait_for_selector("#charts[data-ready='true']", timeout=60_000)
    return float(page.locator("#charts").get_attribute("data-ready-at"))


def bench_dashboard(bench: Bench, points: int, repeat: int) -> list[dict[str, Any]]:
    """Figures ``dashboard``: the endpoint, the run page and the compare view (medians)."""
    work = bench.work / "dashboard"
    work.mkdir(exist_ok=True)
    store_path = work / "dashboard.sqlite"
    store = SqliteStore(store_path)
    _, api_key = store.create_api_key("default", "bench")
    long_run = _fill(store, "long", points)
    compared = [_fill(store, f"run-{i}", points // 10) for i in range(COMPARED_RUNS)]
    store.close()
    server = Server(store_path)
    figures: list[dict[str, Any]] = []
    try:
        with Client(api_key, host=server.url, timeout=60.0) as client:

            def endpoint() -> None:
                answer = client.chart_series(long_run, width=2000)
                assert answer.series[0].total_points == points

            endpoint()  # warm
            ms, runs = _median_ms(endpoint, max(repeat, 5))
            figures.append({"figure": "dashboard", "what": "chart_series 2,000 points",
                            "ms": ms, "runs_ms": runs, "series_points": points})  # fmt: skip
            login = client.create_login_token().login.url
        if shutil.which(CHROMIUM) is None:
            return figures
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(login)
            run_url = f"{server.url}/experiments/{long_run}"
            compare_url = f"{server.url}/compare?" + "&".join(f"e={e}" for e in compared)
            _drawn_ms(page, run_url)  # warm the browser's cache of the modules
            run_ms = sorted(_drawn_ms(page, run_url) for _ in range(max(repeat, 3)))
            compare_ms = sorted(_drawn_ms(page, compare_url) for _ in range(max(repeat, 3)))
            browser.close()
        figures += [
            {"figure": "dashboard", "what": "run page drawn", "ms": run_ms[len(run_ms) // 2],
             "runs_ms": run_ms, "series_points": points},
            {"figure": "dashboard", "what": "compare view drawn",
             "ms": compare_ms[len(compare_ms) // 2], "runs_ms": compare_ms,
             "runs": COMPARED_RUNS, "series_points": points // 10},
        ]  # fmt: skip
    finally:
        server.stop()
    return figures
