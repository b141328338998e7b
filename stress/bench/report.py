"""The target rows: each row of the performance targets, the figure measured for it, met or
not, and its baselines from the same run; printed as a table or written as Markdown."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .common import end_to_end_what


def find_figure(
    results: list[dict[str, Any]], figure: str, contains: str = ""
) -> dict[str, Any] | None:
    """The first result of ``figure`` whose ``what`` contains ``contains``."""
    for r in results:
        if r.get("figure") == figure and contains in r.get("what", ""):
            return r
    return None


def scale_curve_figures(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The throughput-by-writer-count figures (not the idle-ring comparison)."""
    return [r for r in results if r.get("figure") == "scale" and "idle" not in r["what"]]


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f} points/s"


def _joined(*parts: str) -> str:
    """The non-empty ``parts``, separated by semicolons."""
    return "; ".join(part for part in parts if part)


def _rate_of(figure: dict[str, Any]) -> str:
    return _fmt_rate(figure["points_per_s"])


def _ms_of(figure: dict[str, Any]) -> str:
    return f"{figure['ms']} ms"


def _row(
    name: str,
    target: str,
    figure: Any,
    measured: Callable[[Any], str],
    met: Callable[[Any], bool],
    baselines: str | Callable[[Any], str] = "",
) -> dict[str, Any]:
    """One target row. ``measured``, ``met`` and a callable ``baselines`` read ``figure`` and
    are called only when it was measured (found, or a non-empty list)."""
    if callable(baselines):
        baselines = baselines(figure) if figure else ""
    return {
        "figure": "target",
        "what": f"{name}: {target}",
        "row": name,
        "target": target,
        "measured": measured(figure) if figure else "not measured",
        "met": met(figure) if figure else None,
        "baselines": baselines,
    }


def _latency_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    empty = find_figure(results, "log_latency", "empty")
    bare = find_figure(results, "log_latency", "bare")
    log = find_figure(results, "log_latency", "metrana.log")
    shaped = find_figure(results, "log_latency", "shaped like log()")
    base = (
        f"empty call p50 {empty['p50_us']} µs; bare encode+mmap p50 {bare['p50_us']} / "
        f"p99 {bare['p99_us']} µs"
        if empty and bare
        else ""
    )
    if shaped:
        base += (
            f"; bare append shaped like log() p50 {shaped['p50_us']} / p99 {shaped['p99_us']} µs"
        )
    name = "log() in one process"
    rows = [
        _row(name, "p50 ≤ 0.8 µs", log, lambda f: f"p50 {f['p50_us']} µs (mean {f['mean_us']})",
             lambda f: f["p50_us"] <= 0.8, base),
        _row(name, "p99 ≤ 1.5 µs", log, lambda f: f"p99 {f['p99_us']} µs",
             lambda f: f["p99_us"] <= 1.5, base),
        _row(name, "≤ 2x bare msgspec+mmap append", log,
             lambda f: f"{f['ratio_to_bare_p50']}x at p50 ({f['ratio_to_bare_mean']}x mean)",
             lambda f: f["ratio_to_bare_p50"] <= 2.0, base),
    ]  # fmt: skip
    healthy = find_figure(results, "log_latency_faulted", "healthy")
    healthy_base = (
        f"same process, target healthy: p50 {healthy['p50_us']} / p99 {healthy['p99_us']} µs"
        if healthy
        else ""
    )
    for kind in ("stalled", "unreachable"):
        rows.append(
            _row(f"log() while the target is {kind}", "p99 ≤ 1.5 µs (never waits on the network)",
                 find_figure(results, "log_latency_faulted", kind),
                 lambda f: f"p99 {f['p99_us']} µs, p50 {f['p50_us']} µs",
                 lambda f: f["p99_us"] <= 1.5, healthy_base)
        )  # fmt: skip
    return rows


def _throughput_rows(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    queue = find_figure(results, "end_to_end", "baseline: multiprocessing.Queue")
    qbase = f"multiprocessing.Queue.put: {_fmt_rate(queue['points_per_s'])}" if queue else ""
    cpu = find_figure(results, "dispatcher_cpu", "excluding storage")
    cpu_total = find_figure(results, "dispatcher_cpu", "embedded, total")
    cpu_http = find_figure(results, "dispatcher_cpu", "HTTP")
    cpu_base = _joined(
        f"embedded incl. SQLite {cpu_total['cpu_s_per_million']}" if cpu_total else "",
        f"HTTP target {cpu_http['cpu_s_per_million']} CPU-s/M" if cpu_http else "",
    )
    return [
        _row(end_to_end_what(writers, http=False), "≥ 1,000,000 points/s",
             find_figure(results, "end_to_end", end_to_end_what(writers, http=False)),
             _rate_of, lambda f: f["points_per_s"] >= 1_000_000, qbase),
        _row(f"{writers} writers -> metrana serve (HTTP), until committed", "≥ 500,000 points/s",
             find_figure(results, "end_to_end", end_to_end_what(writers, http=True)),
             _rate_of, lambda f: f["points_per_s"] >= 500_000, qbase),
        _row("dispatcher CPU (excluding storage engine / server)",
             "≤ 0.5 CPU-s per million points", cpu,
             lambda f: f"{f['cpu_s_per_million']} CPU-s/M (embedded, storage share removed)",
             lambda f: f["cpu_s_per_million"] <= 0.5, cpu_base),
    ]  # fmt: skip


def _bulk_rows(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    array = find_figure(results, "bulk_calls", "float64 array of 1,024")
    scalar = find_figure(results, "bulk_calls", "scalar")
    dict_call = find_figure(results, "bulk_calls", "log(dict of 10")
    ten = find_figure(results, "bulk_calls", "ten scalar")
    others = ", ".join(
        f"{r['what']}: {r['ns_per_point']} ns/point ({r['cheaper_than_scalar']}x)"
        for r in results
        if r.get("figure") == "bulk_calls" and r is not array and r is not dict_call
        and r is not scalar and r is not ten
    )  # fmt: skip
    scalar_base = f"scalar log() {scalar['ns_per_point']} ns/point, same run" if scalar else ""
    ten_base = f"ten scalar log() calls {ten['ns_per_point']} ns/metric, same run" if ten else ""
    queue = find_figure(results, "end_to_end", "baseline: multiprocessing.Queue")
    scalar_e2e = find_figure(results, "end_to_end", end_to_end_what(writers, http=False))
    scalar_http = find_figure(results, "end_to_end", end_to_end_what(writers, http=True))
    e2e_base = _joined(
        f"scalar writers: {_rate_of(scalar_e2e)}" if scalar_e2e else "",
        f"multiprocessing.Queue.put: {_rate_of(queue)}" if queue else "",
    )
    http_base = f"scalar writers over HTTP: {_rate_of(scalar_http)}" if scalar_http else ""
    return [
        _row("log(name, array of 1,024 float64)", "≤ 20 ns per value", array,
             lambda f: f"{f['ns_per_point']} ns/value", lambda f: f["ns_per_point"] <= 20,
             _joined(scalar_base, others)),
        _row("log(name, array of 1,024 float64)", "≥ 50x cheaper per point than scalar log()",
             array, lambda f: f"{f['cheaper_than_scalar']}x",
             lambda f: f["cheaper_than_scalar"] >= 50, scalar_base),
        _row("log(dict of 10 scalars)", "≥ 3x cheaper per metric than ten scalar calls",
             dict_call,
             lambda f: f"{f['cheaper_than_ten_scalars']}x ({f['ns_per_point']} ns/metric)",
             lambda f: f["cheaper_than_ten_scalars"] >= 3, ten_base),
        _row(end_to_end_what(writers, False, 1024), "≥ 10,000,000 points/s",
             find_figure(results, "end_to_end", end_to_end_what(writers, False, 1024)),
             _rate_of, lambda f: f["points_per_s"] >= 10_000_000 and f["ok"], e2e_base),
        _row(end_to_end_what(writers, True, 1024), "≥ 3,000,000 points/s",
             find_figure(results, "end_to_end", end_to_end_what(writers, True, 1024)),
             _rate_of, lambda f: f["points_per_s"] >= 3_000_000 and f["ok"], http_base),
    ]  # fmt: skip


def _memory_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        _row("memory: writer process", "≤ 8 MiB added RSS (default ring)",
             find_figure(results, "memory", "added RSS per writer"),
             lambda f: f"{f['mib']} MiB", lambda f: f["mib"] <= 8,
             lambda f: "by kind: " + ", ".join(
                 f"{k} {v}" for k, v in f["added_mib_by_kind"].items())),
        _row("memory: dispatcher", "≤ 80 MiB RSS",
             find_figure(results, "memory", "dispatcher peak RSS"),
             lambda f: f"{f['mib']} MiB peak (largest run)", lambda f: f["mib"] <= 80,
             lambda f: f"peaks of the embedded runs {f['embedded_runs']}, of the HTTP runs "
             f"{f['http_runs']} MiB; of the peak, at most {f['rings_shmem_mib']} MiB are the "
             f"writers' rings mapped (shared memory), at most {f['own_mib']} MiB its own "
             "(anon + file)"),
        _row("memory: server under load", "≤ 150 MiB RSS",
             find_figure(results, "memory", "server peak RSS"),
             lambda f: f"{f['mib']} MiB peak", lambda f: f["mib"] <= 150,
             lambda f: f"idle before load {f['idle_mib']} MiB"),
    ]  # fmt: skip


def _start_stop_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    imp_cum = find_figure(results, "import_time", "importtime")
    imp_bare = find_figure(results, "import_time", "baseline")
    import_base = _joined(
        f"python -c pass {imp_bare['ms']} ms" if imp_bare else "",
        f"-X importtime cumulative {imp_cum['ms']} ms" if imp_cum else "",
        f"metrana's own modules {imp_cum.get('metrana_modules_self_ms')} ms; largest "
        "packages imported: " + ", ".join(f"{k} {v}" for k, v in
                                          list(imp_cum.get("largest_imports_ms", {}).items())[:6])
        if imp_cum else "",
    )  # fmt: skip
    return [
        _row("start: import metrana", "≤ 80 ms", find_figure(results, "import_time", "minus"),
             _ms_of, lambda f: f["ms"] <= 80, import_base),
        _row("start: init() until the first log() accepted",
             "≤ 300 ms (dispatcher start included)", find_figure(results, "start_stop", "init()"),
             _ms_of, lambda f: f["ms"] <= 300,
             lambda f: f"runs: {f['runs']}; median phases: " + ", ".join(
                 f"{k} {v} ms" for k, v in f.get("phases_ms", {}).items())),
        _row("stop: close() of an idle writer", "≤ 50 ms",
             find_figure(results, "start_stop", "close()"), _ms_of, lambda f: f["ms"] <= 50,
             lambda f: f"runs: {f['runs']}"),
    ]  # fmt: skip


def _scale_rows(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    idle = find_figure(results, "scale", "idle rings")
    return [
        _row("scale: throughput for 1..32 writers", "a curve (docs/perf/throughput.png)",
             scale_curve_figures(results),
             lambda curve: ", ".join(f"{r['writers']}: {r['points_per_s']:,}" for r in curve),
             lambda curve: all(r["ok"] for r in curve), "points/s by writer count"),
        _row(f"scale: {idle['idle_rings'] if idle else 64} idle rings",
             f"< 5% of the {writers}-writer throughput", idle,
             lambda f: f"cost {f['cost_percent']}% ({_fmt_rate(f['with_idle'])} with, "
             f"{_fmt_rate(f['without_idle'])} without)",
             lambda f: f["cost_percent"] < 5,
             lambda f: f"medians of {f['repeat']} interleaved runs each; dispatcher CPU-s/M "
             f"{f['dispatcher_cpu_s_per_million_with']} with, "
             f"{f['dispatcher_cpu_s_per_million_without']} without; the idle processes "
             f"themselves used {f['idle_processes_cpu_percent']}% of a CPU"),
    ]  # fmt: skip


def _rest_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ingest = find_figure(results, "rest", "JSON ingest")
    listed = find_figure(results, "rest", "list_metrics")
    compared = find_figure(results, "rest", "compare_metrics")
    return [
        _row("REST: JSON ingest, 1,000-event batches", "≥ 50,000 events/s (embedded store)",
             ingest, lambda f: f"{f['events_per_s']:,} events/s",
             lambda f: f["events_per_s"] >= 50_000),
        _row("REST: list_metrics, 10,000 rows", "≤ 200 ms (a 1,000,000-point series)",
             listed, _ms_of, lambda f: f["ms"] <= 200,
             lambda f: f"series of {f['series_points']:,} points; runs {f['runs_ms']} ms"),
        _row("REST: compare_metrics, two series", "≤ 200 ms (two 1,000,000-point series)",
             compared, _ms_of, lambda f: f["ms"] <= 200,
             lambda f: f"series of {f['series_points']:,} points; runs {f['runs_ms']} ms"),
    ]  # fmt: skip


def _dashboard_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    endpoint = find_figure(results, "dashboard", "chart_series")
    run = find_figure(results, "dashboard", "run page")
    compare = find_figure(results, "dashboard", "compare view")
    return [
        _row("Dashboard: chart_series, 2,000 points", "≤ 100 ms (a 1,000,000-point series)",
             endpoint, _ms_of, lambda f: f["ms"] <= 100,
             lambda f: f"series of {f['series_points']:,} points, HTTP; runs {f['runs_ms']}"),
        _row("Dashboard: run page drawn", "≤ 1 s from navigation (a 1,000,000-point series)",
             run, _ms_of, lambda f: f["ms"] <= 1000,
             lambda f: f"headless Chromium; series of {f['series_points']:,}; runs {f['runs_ms']}"),
        _row("Dashboard: compare view drawn", "≤ 1.5 s (10 runs x 100,000 points)",
             compare, _ms_of, lambda f: f["ms"] <= 1500,
             lambda f: f"{f['runs']} runs of {f['series_points']:,}; runs {f['runs_ms']}"),
    ]  # fmt: skip


def _postgres_rows(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    def figure(part: str) -> Any:
        return find_figure(results, "postgres", part)

    sqlite, one, two = (figure(f"[{label}]") for label in (
        "SQLite", "PostgreSQL, one replica", "PostgreSQL, two replicas"))  # fmt: skip
    compare_sqlite = figure("compare_metrics of 10 series, 10,000 rows [SQLite]")
    compare_pg = figure("compare_metrics of 10 series, 10,000 rows [PostgreSQL]")
    return [
        _row(f"{writers} writers -> metrana serve on PostgreSQL, until committed",
             "≥ 300,000 points/s", one, _rate_of, lambda f: f["points_per_s"] >= 300_000,
             _joined(f"SQLite {_rate_of(sqlite)}" if sqlite else "",
                     f"two replicas {_rate_of(two)}" if two else "")),
        _row("compare_metrics, 10 series, PostgreSQL", "≤ 300 ms (10 x 100,000 points)",
             compare_pg, _ms_of, lambda f: f["ms"] <= 300,
             f"SQLite {_ms_of(compare_sqlite)}" if compare_sqlite else ""),
        _row("compare_metrics, 10 series, SQLite", "≤ 300 ms (10 x 100,000 points)",
             compare_sqlite, _ms_of, lambda f: f["ms"] <= 300),
    ]  # fmt: skip


def evaluate(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    """One line per target row: the target, the measured figure, met or not, the baselines."""
    return [
        *_latency_rows(results),
        *_throughput_rows(results, writers),
        *_bulk_rows(results, writers),
        *_memory_rows(results),
        *_start_stop_rows(results),
        *_scale_rows(results, writers),
        *_rest_rows(results),
        *_dashboard_rows(results),
        *_postgres_rows(results, writers),
    ]


def _met_text(met: bool | None, not_met: str) -> str:
    return "n/a" if met is None else ("met" if met else not_met)


def print_table(rows: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    """The target rows as a readable table, each row's baselines under it."""
    width = max(len(r["row"]) for r in rows)
    twidth = max(len(r["target"]) for r in rows)
    print(f"{'row':<{width}}  {'target':<{twidth}}  {'met':<7}  measured", file=out)
    print("-" * (width + twidth + 50), file=out)
    for r in rows:
        met = _met_text(r["met"], "NOT MET")
        print(f"{r['row']:<{width}}  {r['target']:<{twidth}}  {met:<7}  {r['measured']}", file=out)
        if r["baselines"]:
            print(f"    beside: {r['baselines']}", file=out)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The target rows as a Markdown table (for docs/performance.md)."""
    lines = [
        "| figure | target | measured | met | beside it, same run |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["row"], r["target"], r["measured"], _met_text(r["met"], "**not met**"),
                 r["baselines"]]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
