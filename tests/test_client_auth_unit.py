"""Unit tests of what a client's ``auth=`` and ``host=`` resolve to: API keys, the Syvain
CLI's ``auth.json`` (``Client("local")``, written by ``metrana login``), credentials objects
and the host rules, each refusal a ``MetricsApiAuthError`` with the Syvain client's words."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

import httpx
import pytest
from _api_mock import AUTH, FAST, HOST, KEY, Server, bearer, ok
from syvain_metrics_api_client import ClientCredentials as SyvainCredentials
from syvain_metrics_api_client import load_cli_auth

from metrana.api import (
    AsyncClient,
    Client,
    ClientCredentials,
    MetricsApiAuthError,
    MetricsApiError,
    credentials_path,
    delete_credentials,
    load_credentials,
    save_credentials,
)


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_CONFIG_HOME/syvain-metrics``, where both clients look for ``auth.json``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "syvain-metrics"


def write_auth(config_dir: Path, content: object) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "auth.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- hosts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("https://example.org", "https://example.org"),
        ("https://example.org/", "https://example.org"),
        ("  http://127.0.0.1:9000 ", "http://127.0.0.1:9000"),
        ("HTTP://Example.org:80", "http://Example.org:80"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_a_host_is_normalised_to_its_origin(host: str, origin: str) -> None:
    with Client(KEY, host=host) as client:
        assert client.host == origin


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("ftp://example.org", "Metrics API host must use http or https."),
        ("example.org:8765", "Metrics API host must use http or https."),
        ("https://", "Metrics API host must be a valid HTTP(S) origin."),
        ("https://user:pw@example.org", "Metrics API host must be a valid HTTP(S) origin."),
        ("https://user@example.org", "Metrics API host must be a valid HTTP(S) origin."),
        ("http://example.org:99999", "Metrics API host must be a valid HTTP(S) origin."),
        ("https://example.org/metrana", "Metrics API host must not include a path, query, or "
         "fragment."),
        ("https://example.org/?a=1", "Metrics API host must not include a path, query, or "
         "fragment."),
        ("https://example.org#top", "Metrics API host must not include a path, query, or "
         "fragment."),
    ],
)  # fmt: skip
def test_a_host_that_is_not_an_origin_is_refused(host: str, message: str) -> None:
    for client_class in (Client, AsyncClient):
        with pytest.raises(MetricsApiAuthError) as caught:
            client_class(KEY, host=host)
        assert str(caught.value) == message
        assert isinstance(caught.value, MetricsApiError) and isinstance(caught.value, RuntimeError)


def test_the_host_defaults_to_metrana_host_then_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(KEY) as client:
        assert client.host == "http://127.0.0.1:8765"
    monkeypatch.setenv("METRANA_HOST", "https://metrics.example.org")
    with Client(KEY) as client:
        assert client.host == "https://metrics.example.org"
    with Client(KEY, host=HOST) as client:
        assert client.host == HOST


# -- API keys and credentials objects ---------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_api_key_is_refused(key: str) -> None:
    with pytest.raises(MetricsApiAuthError, match=r"^Metrics API key must not be empty\.$"):
        Client(key, host=HOST)


def test_the_key_is_stripped_and_presented_as_a_bearer_token() -> None:
    server = Server(ok(AUTH))
    with server.client(f"\t{KEY}\n") as client:
        client.auth_status()
    assert bearer(server.requests[0]) == KEY


@pytest.mark.parametrize("credentials_class", [ClientCredentials, SyvainCredentials])
def test_credentials_objects_are_accepted(credentials_class: type) -> None:
    """Metrana's, and the Syvain package's own (any object with those attributes)."""
    credentials = credentials_class(KEY, "http://a.test/", org_id="9", login_at=5, source="ci")
    with Client(credentials) as client:
        assert (client.api_key, client.host, client.org_id, client.login_at) == (
            KEY,
            "http://a.test",
            "9",
            5,
        )
        assert client.auth_source == "ci"
    with Client(credentials, host="http://b.test") as client:
        assert client.host == "http://b.test"
    assert KEY not in repr(ClientCredentials(KEY, HOST))


def test_other_auth_values_are_refused() -> None:
    with pytest.raises(MetricsApiAuthError, match="not int"):
        Client(42)  # type: ignore[arg-type]
    with pytest.raises(MetricsApiAuthError, match="'local-dev' is the Syvain development"):
        Client("local-dev")


# -- auth.json ------------------------------------------------------------------------------------


def test_local_reads_the_syvain_auth_file(config_dir: Path) -> None:
    write_auth(
        config_dir, {"apiKey": KEY, "host": "http://s.test:9/", "orgId": "7", "loginAt": 1234}
    )
    server = Server(ok(AUTH))
    transport = httpx.MockTransport(server)
    with Client("local", transport=transport, retry=FAST) as client:
        assert (client.api_key, client.host, client.org_id, client.login_at) == (
            KEY,
            "http://s.test:9",
            "7",
            1234,
        )
        assert client.auth_source == "local"
        client.auth_status()
    assert str(server.requests[0].url) == "http://s.test:9/api/v1/auth/status"
    with Client.from_local(host=HOST, transport=transport) as client:
        assert (client.host, client.api_key) == (HOST, KEY)  # host= wins over the file's
    async_client = AsyncClient.from_local()
    assert (async_client.host, async_client.auth_source) == ("http://s.test:9", "local")
    asyncio.run(async_client.aclose())


def test_a_file_without_host_uses_the_default_and_odd_fields_are_ignored(
    config_dir: Path,
) -> None:
    write_auth(config_dir, {"apiKey": KEY, "orgId": 7, "loginAt": "yesterday", "extra": True})
    credentials = load_credentials()
    assert (credentials.host, credentials.org_id, credentials.login_at) == (
        "http://127.0.0.1:8765",
        None,
        None,
    )


def test_the_file_is_found_under_xdg_then_home_unless_metrana_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert credentials_path() == tmp_path / "home" / ".config" / "syvain-metrics" / "auth.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials_path() == tmp_path / "xdg" / "syvain-metrics" / "auth.json"
    monkeypatch.setenv("METRANA_CONFIG_DIR", str(tmp_path / "mine"))
    assert credentials_path() == tmp_path / "mine" / "auth.json"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "Metrics CLI auth file was not found at {path}."),
        ("{", "Metrics CLI auth file is not valid JSON: {path}."),
        ("[1]", "Metrics CLI auth file must contain a JSON object: {path}."),
        ({"host": HOST}, "Metrics CLI auth file does not contain apiKey: {path}."),
        ({"apiKey": ""}, "Metrics CLI auth file does not contain apiKey: {path}."),
        ({"apiKey": 5}, "Metrics CLI auth file does not contain apiKey: {path}."),
    ],
)
def test_a_missing_or_bad_auth_file_says_how_to_log_in(
    config_dir: Path, content: object, problem: str
) -> None:
    path = config_dir / "auth.json"
    if content is not None:
        write_auth(config_dir, content)
    with pytest.raises(MetricsApiAuthError) as caught:
        Client("local")
    expected = problem.format(path=path) + " Run `metrana login --host URL --api-key KEY`."
    assert str(caught.value) == expected


def test_a_bad_host_in_the_file_is_refused(config_dir: Path) -> None:
    write_auth(config_dir, {"apiKey": KEY, "host": "http://h.test/prefix"})
    with pytest.raises(MetricsApiAuthError, match="must not include a path"):
        Client("local")


def test_saved_credentials_are_private_and_read_by_both_clients(config_dir: Path) -> None:
    path = save_credentials("http://metrana.test:9000/", f" {KEY} ", org_id="3")
    assert path == credentials_path() == config_dir / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved.pop("loginAt") / 1000 == pytest.approx(time.time(), abs=60)
    assert saved == {"apiKey": KEY, "host": "http://metrana.test:9000", "orgId": "3"}
    ours, theirs = load_credentials(), load_cli_auth("local")  # the real Syvain client's reader
    for credentials in (ours, theirs):
        assert (credentials.api_key, credentials.host, credentials.org_id) == (
            KEY,
            "http://metrana.test:9000",
            "3",
        )
    assert ours.login_at == theirs.login_at and ours.source == theirs.source == "local"
    save_credentials("https://other.test", "mtr_two")  # replaced; no temporary file left
    assert load_credentials().api_key == "mtr_two"
    assert json.loads(path.read_text()).keys() == {"apiKey", "host", "loginAt"}
    assert sorted(p.name for p in config_dir.iterdir() if not p.name.endswith(".lock")) == [
        "auth.json"
    ]


def test_saving_checks_the_host_and_the_key(config_dir: Path) -> None:
    with pytest.raises(MetricsApiAuthError, match="must not include a path"):
        save_credentials("http://h.test/x", KEY)
    with pytest.raises(MetricsApiAuthError, match="empty API key"):
        save_credentials(HOST, "  ")
    assert not config_dir.exists()


def test_deleting_the_credentials(config_dir: Path) -> None:
    assert delete_credentials() is False
    save_credentials(HOST, KEY)
    assert delete_credentials() is True
    assert not (config_dir / "auth.json").exists()
    with pytest.raises(MetricsApiAuthError, match="not found"):
        Client("local")
