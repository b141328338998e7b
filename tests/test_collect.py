"""The dispatcher turning decoded spans into columns per series (``dispatcher/_loop.py``):
the splitting on its own, then whole runs whose records mix series, declarations and the
CLOSE record in every order, against a real dispatcher and the embedded store."""

from __future__ import annotations

import random

import pytest
from conftest import export_points

import metrana
from metrana.dispatcher._columns import by_series


def _columns(sids: list[int]) -> tuple[list[int], list[int], list[float], list[int]]:
    n = len(sids)
    return sids, list(range(n)), [i / 2 for i in range(n)], [1000 + i for i in range(n)]


def _expected(sids: list[int]) -> dict[int, tuple[list[int], list[float], list[int]]]:
    out: dict[int, tuple[list[int], list[float], list[int]]] = {}
    for i, sid in enumerate(sids):
        steps, values, timestamps = out.setdefault(sid, ([], [], []))
        steps.append(i)
        values.append(i / 2)
        timestamps.append(1000 + i)
    return out


@pytest.mark.parametrize(
    "sids",
    [
        [7] * 10,  # one series
        [0, 1, 2] * 5,  # the same order every step
        [0, 1, 2] * 5 + [0],  # ... cut mid-step
        [3, 1] * 4,
        [0, 1, 0, 0, 1],  # no period
        [0, 1, 1, 0, 1, 1],  # a period whose ids repeat
        [5, 6, 7, 5, 7, 6],  # the first id recurs, the order does not
        [1, 2],
        list(range(4096)) * 3,  # a vector of 4,096 environments, three steps
        list(range(4096)) * 2 + [0, 1],
    ],
)
def test_split_by_series_keeps_each_series_in_order(sids: list[int]) -> None:
    got = {sid: (list(a), list(b), list(c)) for sid, a, b, c in by_series(*_columns(sids))}
    assert got == _expected(sids)


def test_split_by_series_of_random_mixes() -> None:
    rng = random.Random(5)
    for _ in range(200):
        period = rng.randint(1, 6)
        sids = [rng.randrange(8) for _ in range(period)] * rng.randint(1, 5)
        if rng.random() < 0.5:
            sids += [rng.randrange(8) for _ in range(rng.randint(0, 4))]
        got = {sid: (list(a), list(b), list(c)) for sid, a, b, c in by_series(*_columns(sids))}
        assert got == _expected(sids)


@pytest.mark.slow
def test_mixed_series_declared_mid_run_are_stored_exactly() -> None:
    """Regular steps (loss, acc, lr each step), a series that starts later, labelled series
    in a random order and a dict of metrics: every point stored once, in order."""
    metrana.init(workspace_name="w", project_name="p", run_name="mix", close_strategy="CompleteAll")
    rng = random.Random(11)
    expected: dict[tuple[str, str], list[tuple[int, float]]] = {}

    def log(name: str, value: float, step: int, env: str = "") -> None:
        labels = {"env": env} if env else None
        metrana.log(name, value, step=step, labels=labels)
        expected.setdefault((name, env), []).append((step, value))

    for step in range(3000):
        log("loss", step / 3, step)
        log("acc", step / 7, step)
        log("lr", 0.1, step)
        if step >= 1500:
            log("late", float(step), step)
        if rng.random() < 0.3:
            log("reward", rng.random(), step, env=str(rng.randrange(4)))
        if step % 500 == 0:
            metrana.log({"grad_norm": 1.5, "clip": 0.5}, step=step)
            expected.setdefault(("grad_norm", ""), []).append((step, 1.5))
            expected.setdefault(("clip", ""), []).append((step, 0.5))
    metrana.close()
    stored: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for point in export_points("w", "p", "mix"):
        labels = point["labels"]
        assert isinstance(labels, dict)
        key = (str(point["metric"]), str(labels.get("env", "")))
        stored.setdefault(key, []).append((int(point["step"]), float(point["value"])))
    # a labelled series keeps the first value logged at a step (first write wins)
    for key, points in expected.items():
        first: dict[int, float] = {}
        for step, value in points:
            first.setdefault(step, value)
        expected[key] = sorted(first.items())
    assert {k: sorted(v) for k, v in stored.items()} == expected
    assert sum(len(v) for v in stored.values()) == sum(len(v) for v in expected.values())
