"""The usage example of the Syvain Metrics API client's README (``syvain-metrics-api-client``
0.0.62, kept in ``../shared/seeds/``), run verbatim with ``metrana.Client`` in place of
``SyvainMetricsApiClient`` against a live server, ``"local"`` credentials and all: the README's
code must run unchanged on Metrana."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from metrana.api import save_credentials
from metrana.testing import RunningServer

SEED_README = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "seeds"
    / "syvain-metrics-api-client-0.0.62-README.txt"
)

# The README's "Usage" section, word for word but for its first line (the import) and the class
# name: `SyvainMetricsApiClient` is `Client`, imported from `metrana`.
USAGE = """\
from metrana import ComparisonMetricSeries, Client

client = Client("local")

experiment = client.create_experiment(
    "mamba-run-001",
    description="Baseline mamba training run",
    metadata={"model": "mamba"},
).experiment

client.ingest_metrics(
    experiment.id,
    [
        {
            "client_event_id": "mamba-run-001/loss/1",
            "name": "loss",
            "value": 0.42,
            "step": 1,
            "metadata": {"split": "train"},
        }
    ],
    sync=True,
)

rows = client.compare_metrics(
    [
        ComparisonMetricSeries(
            experiment_id=experiment.id,
            metric_name="loss",
            metadata_key="split",
            metadata_value="train",
        )
    ],
    limit=500,
)"""


def as_in_the_readme(code: str) -> str:
    """``code`` with the README's import and class name back."""
    return code.replace(
        "from metrana import ComparisonMetricSeries, Client",
        "from syvain_metrics_api_client import ComparisonMetricSeries, SyvainMetricsApiClient",
    ).replace("Client(", "SyvainMetricsApiClient(")


@pytest.mark.skipif(not SEED_README.exists(), reason="the seed README is not beside the repo")
def test_the_example_is_the_readmes_word_for_word() -> None:
    readme = SEED_README.read_text()
    start = readme.index("Usage\n\n") + len("Usage\n\n")
    end = readme.index("\n\nEvery metric must include")
    assert as_in_the_readme(USAGE) == readme[start:end]


@pytest.fixture
def logged_in(
    live_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RunningServer:
    """``Client("local")`` pointed at the live server, as ``metrana login`` leaves it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    save_credentials(live_server.url, live_server.api_key)
    return live_server


def test_the_readme_usage_runs_unchanged_with_metrana(logged_in: RunningServer) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(USAGE, "README usage", "exec"), namespace)
    client, experiment, rows = namespace["client"], namespace["experiment"], namespace["rows"]
    try:
        assert (experiment.slug, experiment.description, experiment.metadata) == (
            "mamba-run-001",
            "Baseline mamba training run",
            {"model": "mamba"},
        )
        (row,) = rows.rows
        assert (row.experiment_id, row.metric_name, row.metric_value, row.step) == (
            experiment.id,
            "loss",
            0.42,
            1,
        )
        assert json.loads(row.event_metadata_json) == {"split": "train"}
        assert client.host == logged_in.url
    finally:
        client.close()


def test_the_readmes_constructors_run_unchanged_with_metrana() -> None:
    """The README's "Authentication" and "Host and Timeouts" snippets (no request is sent
    until a call)."""
    from metrana import Client

    for client in (
        Client("ak_org_..."),
        Client(
            "ak_org_...",
            host="https://metrics.syvain.com",
            timeout=10.0,
            ingest_timeout=60.0,
        ),
    ):
        with client:
            assert client.api_key == "ak_org_..."
