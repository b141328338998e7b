"""``memory``: the RSS a writer process adds, and the peak RSS of the dispatcher and of the
server under load (sampled during the end-to-end runs)."""

from __future__ import annotations

from typing import Any

from .common import MIB, init_run, unique_run_name, values_of
from .context import Bench
from .processes import ask_child, proc_status


def _memory_child(conn: Any, points: int) -> None:
    import metrana

    before = proc_status()
    init_run(unique_run_name("memory"), backpressure_strategy="Block")
    for i in range(points):
        metrana.log("loss", 0.5, step=i)
    metrana.flush(timeout=300)
    after = proc_status()
    metrana.close(timeout=60)
    conn.send((before, after))


def bench_memory(bench: Bench, points: int) -> dict[str, Any]:
    """RSS added by init() and logging ``points`` in a fresh process, by kind of memory."""
    bench.fresh("memory")
    before, after = ask_child(_memory_child, (points,), 300, "memory")
    added = {
        key: round((after.get(key, 0) - before.get(key, 0)) / MIB, 2)
        for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    }
    return {
        "figure": "memory",
        "what": "added RSS per writer process (default ring), after init + logging",
        "mib": added["VmRSS"],
        "points_logged": points,
        "added_mib_by_kind": added,
        "rss_before_init_mib": round(before.get("VmRSS", 0) / MIB, 1),
    }


def peak_rss_figures(
    embedded: list[dict[str, Any]], http: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The dispatcher's and the server's peak RSS over the end-to-end runs."""
    out: list[dict[str, Any]] = []
    rss_embedded = values_of(embedded, "dispatcher_peak_rss_mib")
    rss_http = values_of(http, "dispatcher_peak_rss_mib")
    own = values_of([*embedded, *http], "dispatcher_peak_rss_own_mib")
    shmem = values_of([*embedded, *http], "dispatcher_peak_rss_shmem_mib")
    if rss_embedded or rss_http:
        out.append({"figure": "memory", "what": "dispatcher peak RSS (VmHWM) under load",
                    "mib": max(rss_embedded + rss_http), "embedded_runs": rss_embedded,
                    "http_runs": rss_http, "own_mib": max(own, default=0),
                    "rings_shmem_mib": max(shmem, default=0)})  # fmt: skip
    server = values_of(http, "server_peak_rss_mib")
    if server:
        out.append({"figure": "memory", "what": "server peak RSS (VmHWM) under load",
                    "mib": max(server), "idle_mib": http[0]["server_rss_idle_mib"]})  # fmt: skip
    return out
