"""The server's commands: serve, keys, login, sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import cli, kill_tree

import metrana
from metrana.api import Client, MetricsApiRequestError
from metrana.dispatcher._spool import spool_root
from metrana.testing import RunningServer, stored_points


@pytest.mark.slow
def test_serve_prints_the_first_key_once_and_answers(tmp_path: Path) -> None:
    store = str(tmp_path / "served.sqlite")
    process = subprocess.Popen(
        [sys.executable, "-m", "metrana.cli", "serve", "--store", store, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Created the first API key of this store")
        key = process.stdout.readline().strip()
        listening = process.stdout.readline()
        assert listening.startswith("Metrana server on http://127.0.0.1:")
        url = listening.split()[3]
        with Client(key, host=url) as client:
            assert client.auth_status().organization.name == "default"
            assert client.create_folder("from-cli").folder.path_name == "from-cli"
    finally:
        kill_tree(process.pid)
        process.communicate(timeout=10)
    listed = json.loads(cli("keys", "list", "--store", store, "--json").stdout)
    assert [(k["name"], k["revoked"]) for k in listed] == [("first key", False)]


@pytest.mark.slow
def test_keys_create_list_revoke(tmp_path: Path, live_server: RunningServer) -> None:
    store = live_server.store_path
    created = json.loads(cli("keys", "create", "--store", store, "--name", "ci", "--json").stdout)
    assert created["secret"].startswith("mtr_") and created["organization"] == "default"
    with Client(created["secret"], host=live_server.url) as client:
        assert client.auth_status().key_name == "ci"
        listed = json.loads(cli("keys", "list", "--store", store, "--json").stdout)
        assert [k["name"] for k in listed] == ["test", "ci"]
        assert all("secret" not in k and "hash" not in k for k in listed)
        revoked = json.loads(
            cli("keys", "revoke", created["prefix"], "--store", store, "--json").stdout
        )
        assert revoked["revoked"] is True
        with pytest.raises(MetricsApiRequestError) as error:
            client.auth_status()
        assert error.value.status_code == 401
    unknown = cli("keys", "revoke", "mtr_nothing", "--store", store, check=False)
    assert unknown.returncode == 1
    assert "no API key with prefix 'mtr_nothing'" in unknown.stderr


@pytest.mark.slow
def test_login_saves_credentials_for_the_local_client(
    tmp_path: Path, live_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    monkeypatch.setenv("METRANA_CONFIG_DIR", str(config))
    out = cli("login", "--host", live_server.url, "--api-key", live_server.api_key).stdout
    assert f"logged in to {live_server.url}: organization" in out
    auth = config / "auth.json"
    assert auth.stat().st_mode & 0o777 == 0o600
    with Client("local") as client:
        assert client.host == live_server.url
        assert client.auth_status().auth.kind == "api_key"
    refused = cli("login", "--host", live_server.url, "--api-key", "mtr_wrong", check=False)
    assert refused.returncode == 1
    assert "unknown, revoked or expired key" in refused.stderr
    assert json.loads(auth.read_text())["apiKey"] == live_server.api_key


@pytest.mark.slow
def test_an_offline_run_is_delivered_later_by_sync(
    isolated: Path, live_server: RunningServer, client: Client
) -> None:
    metrana.init(
        workspace_name="default", project_name="p", run_name="air-gapped", ingestion_url="offline"
    )
    for step in range(3_000):
        metrana.log("loss", float(step))
    metrana.close(close_strategy="CompleteAll")
    assert list(spool_root(isolated).iterdir())

    env = {**os.environ, "METRANA_API_KEY": live_server.api_key}
    missing_url = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "sync"], capture_output=True, text=True, env=env
    )
    assert missing_url.returncode == 1
    assert "pass --url" in missing_url.stderr

    synced = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "sync", "--url", live_server.url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    (result,) = json.loads(synced.stdout)
    assert result["skipped"] is None, result
    assert (result["points"], result["accepted"], result["duplicates"]) == (3_000, 3_000, 0)
    (experiment,) = client.list_experiments().experiments
    (points,) = stored_points(client, experiment.id).values()
    assert [step for step, _ in points] == list(range(3_000))
    again = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "sync", "--url", live_server.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert again.stdout.strip() == "nothing to sync"
    assert sum(map(len, stored_points(client, experiment.id).values())) == 3_000


def test_health_needs_no_key(live_server: RunningServer) -> None:
    assert httpx.get(live_server.url + "/api/v1/health").json()["status"] == "ok"


@pytest.mark.slow
def test_keys_on_a_missing_store_or_unknown_key_fail_cleanly(tmp_path: Path) -> None:
    missing = cli("keys", "list", "--store", str(tmp_path / "typo.sqlite"), check=False)
    assert missing.returncode != 0 and "no store at" in missing.stderr
    assert not (tmp_path / "typo.sqlite").exists()
    store = str(tmp_path / "s.sqlite")
    cli("keys", "create", "--store", store)
    unknown = cli("keys", "revoke", "99", "--store", store, check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "metrana: no API key with id '99'"


def test_serve_takes_an_ingestion_key_lifetime_within_bounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from metrana.cli._main import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve", "--ingestion-key-ttl", "3600"]).ingestion_key_ttl == 3600
    assert parser.parse_args(["serve"]).ingestion_key_ttl == 86400
    for bad in ("0", "604801", "soon"):
        with pytest.raises(SystemExit) as usage:
            parser.parse_args(["serve", "--ingestion-key-ttl", bad])
        assert usage.value.code == 2
        assert "--ingestion-key-ttl" in capsys.readouterr().err
