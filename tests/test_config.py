"""Configuration: arguments over environment variables over defaults; clear errors."""

from __future__ import annotations

import pytest

from metrana import (
    BackpressureStrategy,
    CloseStrategy,
    ErrorStrategy,
    LogLevel,
    MetranaConfigError,
    MetranaMissingApiKeyError,
    ResumeStrategy,
)
from metrana._config import SETTINGS, resolve_config, settings_markdown, spool_max_bytes

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "r"}

ENUM_SETTINGS = [
    # (argument, variable, default, a non-default value, its member)
    (
        "backpressure_strategy",
        "METRANA_BACKPRESSURE_STRATEGY",
        BackpressureStrategy.DROP_NEW,
        "Block",
        BackpressureStrategy.BLOCK,
    ),
    (
        "error_strategy",
        "METRANA_ERROR_MODES",
        ErrorStrategy.WARN,
        "RaiseOnClose",
        ErrorStrategy.RAISE_ON_CLOSE,
    ),
    (
        "close_strategy",
        "METRANA_CLOSE_STRATEGY",
        CloseStrategy.COMPLETE_PENDING,
        "CompleteAll",
        CloseStrategy.COMPLETE_ALL,
    ),
    (
        "resume_strategy",
        "METRANA_RESUME_STRATEGY",
        ResumeStrategy.ALLOW,
        "Never",
        ResumeStrategy.NEVER,
    ),
    ("log_level", "METRANA_LOG_LEVEL", LogLevel.SUCCESS, "Debug", LogLevel.DEBUG),
]


@pytest.mark.parametrize(("arg", "var", "default", "text", "member"), ENUM_SETTINGS)
def test_enum_setting_default_env_and_argument(
    arg: str, var: str, default: object, text: str, member: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert getattr(resolve_config(**NAMES), arg) is default
    monkeypatch.setenv(var, text)
    assert getattr(resolve_config(**NAMES), arg) is member
    # the argument beats its variable, as enum member or as name
    assert getattr(resolve_config(**NAMES, **{arg: default}), arg) is default
    assert getattr(resolve_config(**NAMES, **{arg: default.value}), arg) is default  # type: ignore[attr-defined]


@pytest.mark.parametrize(("arg", "var", "default", "text", "member"), ENUM_SETTINGS)
def test_bad_enum_value_names_setting_value_and_accepted(
    arg: str, var: str, default: object, text: str, member: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MetranaConfigError) as error:
        resolve_config(**NAMES, **{arg: "Sometimes"})
    message = str(error.value)
    assert arg in message and "'Sometimes'" in message and "accepted values:" in message
    assert text in message
    monkeypatch.setenv(var, "bogus")
    with pytest.raises(MetranaConfigError, match=f"environment variable {var}"):
        resolve_config(**NAMES)


@pytest.mark.parametrize(
    "var",
    [
        "METRANA_EVENT_QUEUE_MAX_SIZE",
        "METRANA_DISPATCH_QUEUE_MAX_SIZE",
        "METRANA_ERROR_QUEUE_MAX_SIZE",
    ],
)
def test_queue_sizes_from_environment(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, "123")
    field = var.removeprefix("METRANA_").lower()
    assert getattr(resolve_config(**NAMES), field) == 123
    monkeypatch.setenv(var, "lots")
    with pytest.raises(MetranaConfigError, match=f"invalid {var} 'lots'.*an integer"):
        resolve_config(**NAMES)
    monkeypatch.setenv(var, "-1")
    with pytest.raises(MetranaConfigError, match=var):
        resolve_config(**NAMES)


def test_event_queue_zero_means_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "0")
    assert resolve_config(**NAMES).event_queue_max_size == 0


def test_event_queue_size_has_a_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bounded ring is one segment, whose offsets take 28 bits of the published word."""
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "5000000")
    assert resolve_config(**NAMES).event_queue_max_size == 5_000_000
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "5000001")
    with pytest.raises(
        MetranaConfigError,
        match=r"invalid METRANA_EVENT_QUEUE_MAX_SIZE '5000001' .*an integer from 0 to 5_000_000",
    ):
        resolve_config(**NAMES)


def test_ingestion_url_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_config(**NAMES).ingestion_url is None
    assert resolve_config(**NAMES).is_embedded
    assert resolve_config(**NAMES, ingestion_url="offline").ingestion_url == "offline"
    with pytest.raises(MetranaMissingApiKeyError, match="METRANA_API_KEY"):
        resolve_config(**NAMES, ingestion_url="http://127.0.0.1:1/")
    monkeypatch.setenv("METRANA_API_KEY", "k-env")
    config = resolve_config(**NAMES, ingestion_url="http://127.0.0.1:1/")
    assert (config.ingestion_url, config.api_key) == ("http://127.0.0.1:1", "k-env")
    assert resolve_config(**NAMES, api_key="k-arg").api_key == "k-arg"
    monkeypatch.setenv("METRANA_INGESTION_URL", "ftp://nope")
    with pytest.raises(MetranaConfigError, match="METRANA_INGESTION_URL"):
        resolve_config(**NAMES)


def test_home_and_orchestration_id(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("METRANA_HOME", "/tmp/somewhere/../elsewhere")
    assert resolve_config(**NAMES).home == "/tmp/elsewhere"
    assert resolve_config(**NAMES).store_path == "/tmp/elsewhere/store.sqlite"
    monkeypatch.delenv("METRANA_ORCHESTRATION_ID")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "te-1")
    assert resolve_config(**NAMES).orchestration_id == "te-1"
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert resolve_config(**NAMES).orchestration_id == "4242"
    monkeypatch.delenv("SLURM_JOB_ID")
    generated = resolve_config(**NAMES).orchestration_id
    import os

    assert os.environ["METRANA_ORCHESTRATION_ID"] == generated  # exported for children
    assert resolve_config(**NAMES).orchestration_id == generated


@pytest.mark.parametrize("field", ["workspace_name", "project_name", "run_name"])
@pytest.mark.parametrize("bad", ["", "   ", 7, "x" * 300])
def test_bad_names(field: str, bad: object) -> None:
    with pytest.raises(MetranaConfigError, match=field):
        resolve_config(**{**NAMES, field: bad})


def test_bad_numbers() -> None:
    with pytest.raises(MetranaConfigError, match="num_dispatch_workers"):
        resolve_config(**NAMES, num_dispatch_workers=0)
    with pytest.raises(MetranaConfigError, match="num_dispatch_workers"):
        resolve_config(**NAMES, num_dispatch_workers="four")


# -- the one table ---------------------------------------------------------------------------

TABLE_VARIABLES = [entry.variable for entry in SETTINGS if entry.variable is not None]


@pytest.mark.parametrize("variable", TABLE_VARIABLES)
def test_a_bad_value_of_any_variable_fails_at_init_naming_it(variable: str) -> None:
    environ = {"METRANA_ORCHESTRATION_ID": "job", variable: "\x00 not a value"}
    with pytest.raises(MetranaConfigError) as error:
        resolve_config(**NAMES, environ=environ)
    message = str(error.value)
    assert f"environment variable {variable}" in message
    assert "accepted values:" in message


def test_a_spool_size_takes_units_and_a_bad_one_is_refused_at_init() -> None:
    def size(text: str) -> int:
        return spool_max_bytes({"METRANA_SPOOL_MAX_BYTES": text})

    assert size("1GiB") == 1 << 30
    assert size("512 MiB") == 512 << 20
    assert size("2GB") == 2_000_000_000
    assert size("100000") == 100_000
    assert spool_max_bytes({}) == 1 << 30
    with pytest.raises(
        MetranaConfigError,
        match=r"invalid METRANA_SPOOL_MAX_BYTES '1 gigabyte' .*accepted values: a size",
    ):
        resolve_config(
            **NAMES,
            environ={"METRANA_ORCHESTRATION_ID": "j", "METRANA_SPOOL_MAX_BYTES": "1 gigabyte"},
        )
    with pytest.raises(MetranaConfigError, match="at least 1024 bytes"):
        resolve_config(
            **NAMES, environ={"METRANA_ORCHESTRATION_ID": "j", "METRANA_SPOOL_MAX_BYTES": "10"}
        )


def test_an_unknown_metrana_variable_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    resolve_config(
        **NAMES, environ={"METRANA_ORCHESTRATION_ID": "j", "METRANA_INGESTION_UR": "http://x"}
    )
    assert "unknown environment variable METRANA_INGESTION_UR ignored" in caplog.text


def test_every_metrana_variable_the_code_reads_is_in_the_table() -> None:
    import re
    from pathlib import Path

    import metrana

    named = set()
    for path in Path(metrana.__file__).parent.rglob("*.py"):
        named.update(re.findall(r"[\"'](METRANA_[A-Z_]+)[\"']", path.read_text()))
    assert named - set(TABLE_VARIABLES) == set()


def test_the_docs_settings_table_is_generated_from_the_table() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"
    assert settings_markdown() in doc.read_text()


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("workspace_name", "team/a", "invalid workspace_name 'team/a'; accepted values: a non-empty"
         ' string of at most 200 characters without NUL or "/"'),
        ("experiment_name", "a/b", "invalid experiment_name 'a/b'"),
        ("project_name", "p" * 201, f"invalid project_name {'p' * 40!r}...; accepted values"),
        ("run_name", "r" * 201, "accepted values: a non-empty string of at most 200 characters "
         "without NUL"),
    ],
)  # fmt: skip
def test_a_run_address_is_refused_where_the_api_could_not_hold_it(
    argument: str, value: str, message: str
) -> None:
    """Workspace, project and experiment become folders of a "/"-joined path, the run the
    experiment's slug: the API's bounds are checked at init(), not at the handshake."""
    with pytest.raises(MetranaConfigError) as refused:
        resolve_config(**{**NAMES, argument: value})
    assert message in str(refused.value)
    assert resolve_config(**{**NAMES, "run_name": "r/1"}).run.run_name == "r/1"


def test_host_id_defaults_to_the_host_name_and_separates_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from metrana.session import Session

    default = resolve_config(**NAMES)
    assert default.host_id == socket.gethostname()
    monkeypatch.setenv("METRANA_HOST_ID", "node-1")
    one = resolve_config(**NAMES)
    monkeypatch.setenv("METRANA_HOST_ID", "node-2")
    two = resolve_config(**NAMES)
    assert (one.host_id, two.host_id) == ("node-1", "node-2")
    # two hosts of one job (same orchestration id, same target): one session, one
    # dispatcher, each
    assert one.orchestration_id == two.orchestration_id
    assert len({Session.key(default), Session.key(one), Session.key(two)}) == 3
