"""``metrana.init(config=...)``: a JSON config, checked at ``init()``, stored as the run's
metadata by the handshake (embedded store and server alike), merged on resume."""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import pytest
from conftest import init_over_http, target_server
from integrations_readback import run_metadata

import metrana
from metrana._config import resolve_config
from metrana.testing import InProcessSession

NAMES = {"workspace_name": "default", "project_name": "proj", "run_name": "configured"}


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ([("lr", 0.1)], "a dict, not list"),
        ({1: "one"}, "config has the key 1, not a str"),
        ({"lr": math.nan}, "config['lr'] is nan, which JSON cannot hold"),
        ({"opt": {"betas": [0.9, math.inf]}}, "config['opt']['betas'][1] is inf"),
        ({"seed": 2**64}, "config['seed'] is an int beyond 64 bits"),
        ({"dtype": object()}, "config['dtype'] is a object, not a JSON value"),
        ({"blob": "x" * (1024 * 1024)}, "over the limit of 1048576"),
    ],
)
def test_a_bad_config_is_refused_at_init_naming_where(config: Any, problem: str) -> None:
    with pytest.raises(metrana.MetranaConfigError, match="invalid config") as raised:
        metrana.init(**NAMES, config=config)  # nothing starts: init() checks first
    assert problem in str(raised.value)
    assert "accepted values: a dict with str keys" in str(raised.value)


def test_a_config_is_copied_with_tuples_as_lists() -> None:
    given = {"layers": (64, 64), "opt": {"name": "adam", "betas": (0.9, 0.999)}, "ok": None}
    settings = resolve_config(**NAMES, config=given)
    assert settings.metadata == {
        "layers": [64, 64],
        "opt": {"name": "adam", "betas": [0.9, 0.999]},
        "ok": None,
    }
    given["opt"]["name"] = "sgd"  # the caller's dict is not the run's
    assert settings.metadata["opt"]["name"] == "adam"
    assert resolve_config(**NAMES).metadata == {}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["embedded", "http"])
def test_the_config_is_the_runs_metadata_merged_on_resume(
    target: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = target_server(target, request)

    def run(config: dict[str, Any]) -> None:
        """One job: its own orchestration id, so its own session and handshake."""
        monkeypatch.setenv("METRANA_ORCHESTRATION_ID", uuid.uuid4().hex)
        if server is None:
            metrana.init(**NAMES, config=config)
        else:
            init_over_http(server, "configured", config=config)
        metrana.log("loss", 0.5)
        metrana.close(close_strategy="CompleteAll")

    first = {"lr": 0.1, "layers": [64, 64], "optimizer": {"name": "adam", "eps": 1e-8}}
    run(first)
    assert run_metadata(server, "configured") == first
    # resumed: shallow merge, the new top-level keys win, the others stay
    run({"lr": 0.05, "optimizer": {"name": "sgd"}, "resumed": True})
    assert run_metadata(server, "configured") == {
        "lr": 0.05,
        "layers": [64, 64],
        "optimizer": {"name": "sgd"},
        "resumed": True,
    }
    run({})  # no config: the metadata stays as it is
    assert run_metadata(server, "configured")["lr"] == 0.05


def test_the_capturing_target_keeps_the_runs_metadata() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, config={"lr": 0.1, "layers": (8, 8)})
        metrana.close()
    assert session.target.metadata == {"lr": 0.1, "layers": [8, 8]}


def test_a_process_joining_a_running_session_says_its_config_is_not_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with InProcessSession() as session:
        session.start(**NAMES, config={"lr": 0.1})
        with caplog.at_level(logging.WARNING, logger="metrana"):
            metrana.init(**NAMES, config={"lr": 0.1})  # the same: nothing to say
            metrana.close()
            assert not caplog.records
            metrana.init(**NAMES, config={"lr": 0.2})
            metrana.close()
    (record,) = caplog.records
    assert "init(config=...) of this process is not stored" in record.getMessage()
