"""The stress verification: read every writer's series back (from the embedded store or
through the REST client) and check each stored point against ``value_of``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from ._writers import PROJECT, RUN, WORKSPACE, value_of


def stored_embedded(home: Path) -> dict[int, list[tuple[int, float]]]:
    from metrana.storage import SqliteStore

    store = SqliteStore(home / "store.sqlite")
    run = store.find_run(WORKSPACE, PROJECT, RUN)
    out: dict[int, list[tuple[int, float]]] = {}
    if run is not None:
        for point in store.points(run.experiment_id):
            out.setdefault(int(point.labels["writer"]), []).append((point.step, point.value))
    store.close()
    return out


def stored_http(url: str, api_key: str) -> dict[int, list[tuple[int, float]]]:
    import json

    from metrana.api import Client
    from metrana.testing import stored_points

    out: dict[int, list[tuple[int, float]]] = {}
    with Client(api_key, host=url, timeout=120) as client:
        for experiment in client.list_experiments(slug=RUN).experiments:
            series = stored_points(client, experiment.id, metric_name="value")
            for (_, labels), stored in series.items():
                points = out.setdefault(int(json.loads(labels)["writer"]), [])
                points.extend((step, float(value)) for step, value in stored)
    return out


def verify(
    args: argparse.Namespace,
    stored: dict[int, list[tuple[int, float]]],
    progress: list[Any],
    killed: set[int],
    crashed: set[int],
) -> tuple[bool, dict[str, int]]:
    figures = Counter[str]()
    ok = not crashed  # a log() that raised is a failure of its own, whatever was stored
    figures["crashed"] = len(crashed)
    for index in range(args.writers):
        points = sorted(stored.get(index, []))
        steps = [step for step, _ in points]
        figures["stored"] += len(points)
        figures["duplicates"] += len(steps) - len(set(steps))
        wrong = sum(1 for step, value in points if value != value_of(index, step))
        figures["wrong"] += wrong
        if index in killed or index in crashed:
            reached = progress[index].value
            figures["killed_reached"] += reached
            prefix = steps == list(range(len(steps)))
            if not prefix or len(steps) < reached:
                ok = False
                figures["missing"] += max(0, reached - len(steps)) + (0 if prefix else 1)
        else:
            figures["logged"] += args.points
            if steps != list(range(args.points)):
                ok = False
                figures["missing"] += args.points - len(set(steps) & set(range(args.points)))
        if wrong:
            ok = False
    ok = ok and figures["duplicates"] == 0
    return ok, dict(figures)
