"""Configuration, resolved in one place: ``init()`` arguments over ``METRANA_*`` variables over
defaults. Every value is validated here; a bad one raises :class:`MetranaConfigError` naming the
setting, the value and what is accepted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ._enums import (
    BackpressureStrategy,
    CloseStrategy,
    ErrorStrategy,
    LogLevel,
    ResumeStrategy,
    _NamedEnum,
    parse_enum,
)
from ._errors import MetranaConfigError, MetranaMissingApiKeyError
from ._retry import RetryPolicy

__all__ = [
    "Config",
    "RunIdentity",
    "api_host",
    "config_dir",
    "default_store_path",
    "metrana_home",
    "orchestration_id",
    "resolve_config",
    "retry_policy",
]

DEFAULT_EVENT_QUEUE_MAX_SIZE = 100_000
# A bounded ring is one segment of 48 bytes an event, and a segment holds at most 256 MiB.
MAX_EVENT_QUEUE_SIZE = 5_000_000
DEFAULT_DISPATCH_QUEUE_MAX_SIZE = 64
DEFAULT_ERROR_QUEUE_MAX_SIZE = 1_000
DEFAULT_CLOSE_TIMEOUT = 30.0
DEFAULT_INIT_TIMEOUT = 30.0
DEFAULT_BLOCK_TIMEOUT = 60.0
MAX_NAME_LENGTH = 256
OFFLINE = "offline"
DEFAULT_API_HOST = "http://127.0.0.1:8765"

ORCHESTRATION_VARIABLES = ("METRANA_ORCHESTRATION_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")

E = TypeVar("E", bound=_NamedEnum)


class RunIdentity(msgspec.Struct, frozen=True):
    """Names that identify one run in a store."""

    workspace_name: str
    project_name: str
    run_name: str
    experiment_name: str | None = None


class Config(msgspec.Struct, frozen=True):
    """Every resolved setting of one ``init()``; also handed to the dispatcher as JSON."""

    run: RunIdentity
    api_key: str | None
    ingestion_url: str | None
    home: str
    orchestration_id: str
    resume_strategy: ResumeStrategy
    backpressure_strategy: BackpressureStrategy
    error_strategy: ErrorStrategy
    close_strategy: CloseStrategy
    log_level: LogLevel
    num_dispatch_workers: int
    event_queue_max_size: int
    dispatch_queue_max_size: int
    error_queue_max_size: int
    close_timeout: float
    init_timeout: float
    block_timeout: float
    system_metrics: bool = False
    system_metrics_interval: float = 5.0

    @property
    def store_path(self) -> str:
        """The embedded SQLite store under ``METRANA_HOME``."""
        return str(Path(self.home) / "store.sqlite")

    @property
    def is_embedded(self) -> bool:
        return self.ingestion_url is None

    @property
    def target(self) -> str:
        """A string naming where data goes; part of the session key."""
        if self.ingestion_url is None:
            return f"embedded:{self.store_path}"
        return self.ingestion_url


def orchestration_id(environ: Mapping[str, str] | None = None) -> str:
    """The job's orchestration id: the first set of ``METRANA_ORCHESTRATION_ID``,
    ``TORCHELASTIC_RUN_ID``, ``SLURM_JOB_ID``; else a new token, exported to
    ``METRANA_ORCHESTRATION_ID`` so that child processes inherit it."""
    env = os.environ if environ is None else environ
    for name in ORCHESTRATION_VARIABLES:
        value = env.get(name)
        if value:
            return value
    token = uuid.uuid4().hex
    if environ is None:
        os.environ["METRANA_ORCHESTRATION_ID"] = token
    return token


def _pick(argument: Any, env_name: str | None, environ: Mapping[str, str]) -> tuple[Any, str]:
    """The argument if given, else the variable; with the name to quote in errors."""
    if argument is not None:
        return argument, "argument"
    if env_name is not None and environ.get(env_name, "") != "":
        return environ[env_name], f"environment variable {env_name}"
    return None, "default"


def _enum_setting(
    cls: type[E], setting: str, argument: Any, env_name: str, default: E, environ: Mapping[str, str]
) -> E:
    raw, source = _pick(argument, env_name, environ)
    if raw is None:
        return default
    member = parse_enum(cls, raw)
    if member is None:
        raise MetranaConfigError(
            f"invalid {setting} {raw!r} (from {source}); accepted values: {cls.accepted()}"
        )
    return member


def _int_setting(
    setting: str,
    argument: Any,
    env_name: str | None,
    default: int,
    minimum: int,
    environ: Mapping[str, str],
    maximum: int | None = None,
) -> int:
    raw, source = _pick(argument, env_name, environ)
    if raw is None:
        return default
    accepted = f"an integer >= {minimum}"
    if maximum is not None:
        accepted = f"an integer from {minimum} to {maximum:,}".replace(",", "_")
    try:
        if isinstance(raw, (bool, float)):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        raise MetranaConfigError(
            f"invalid {setting} {raw!r} (from {source}); accepted values: {accepted}"
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise MetranaConfigError(
            f"invalid {setting} {raw!r} (from {source}); accepted values: {accepted}"
        )
    return value


def _float_setting(
    setting: str, argument: Any, env_name: str, default: float, environ: Mapping[str, str]
) -> float:
    raw, source = _pick(argument, env_name, environ)
    if raw is None:
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise MetranaConfigError(
            f"invalid {setting} {raw!r} (from {source}); accepted values: a number of seconds > 0"
        )
    return value


def _name_setting(setting: str, value: Any, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise MetranaConfigError(
            f"invalid {setting} {value!r}; accepted values: a non-empty string "
            f"of at most {MAX_NAME_LENGTH} characters"
        )
    if len(value) > MAX_NAME_LENGTH or "\x00" in value:
        raise MetranaConfigError(
            f"invalid {setting} {value[:40]!r}...; accepted values: a non-empty string "
            f"of at most {MAX_NAME_LENGTH} characters without NUL"
        )
    return value


def _ingestion_url(argument: Any, environ: Mapping[str, str]) -> str | None:
    raw, source = _pick(argument, "METRANA_INGESTION_URL", environ)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise MetranaConfigError(
            f"invalid ingestion_url {raw!r} (from {source}); accepted values: "
            "an http(s):// URL, 'offline', or unset for the embedded store"
        )
    url = raw.strip()
    if url.lower() in ("", "embedded", "local"):
        return None
    if url.lower() == OFFLINE:
        return OFFLINE
    if not (url.startswith("http://") or url.startswith("https://")):
        raise MetranaConfigError(
            f"invalid ingestion_url {raw!r} (from {source}); accepted values: "
            "an http(s):// URL, 'offline', or unset for the embedded store"
        )
    return url.rstrip("/")


def resolve_config(
    *,
    api_key: str | None = None,
    workspace_name: Any = None,
    project_name: Any = None,
    run_name: Any = None,
    experiment_name: Any = None,
    resume_strategy: Any = None,
    backpressure_strategy: Any = None,
    error_strategy: Any = None,
    close_strategy: Any = None,
    log_level: Any = None,
    num_dispatch_workers: Any = None,
    ingestion_url: Any = None,
    event_queue_max_size: Any = None,
    close_timeout: Any = None,
    system_metrics: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve and validate every setting of ``init()``."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    run = RunIdentity(
        workspace_name=str(_name_setting("workspace_name", workspace_name, True)),
        project_name=str(_name_setting("project_name", project_name, True)),
        run_name=str(_name_setting("run_name", run_name, True)),
        experiment_name=_name_setting("experiment_name", experiment_name, False),
    )
    url = _ingestion_url(ingestion_url, env)
    key, _ = _pick(api_key, "METRANA_API_KEY", env)
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise MetranaConfigError(f"invalid api_key {key!r}; accepted values: a non-empty string")
    if url is not None and url != OFFLINE and key is None:
        raise MetranaMissingApiKeyError(
            f"ingestion_url {url!r} needs an API key: pass api_key= to init() "
            "or set METRANA_API_KEY (create one with `metrana keys create`)"
        )
    return Config(
        run=run,
        api_key=key,
        ingestion_url=url,
        home=str(metrana_home(env)),
        orchestration_id=orchestration_id(environ),
        resume_strategy=_enum_setting(
            ResumeStrategy,
            "resume_strategy",
            resume_strategy,
            "METRANA_RESUME_STRATEGY",
            ResumeStrategy.ALLOW,
            env,
        ),
        backpressure_strategy=_enum_setting(
            BackpressureStrategy,
            "backpressure_strategy",
            backpressure_strategy,
            "METRANA_BACKPRESSURE_STRATEGY",
            BackpressureStrategy.DROP_NEW,
            env,
        ),
        error_strategy=_enum_setting(
            ErrorStrategy,
            "error_strategy",
            error_strategy,
            "METRANA_ERROR_MODES",
            ErrorStrategy.WARN,
            env,
        ),
        close_strategy=_enum_setting(
            CloseStrategy,
            "close_strategy",
            close_strategy,
            "METRANA_CLOSE_STRATEGY",
            CloseStrategy.COMPLETE_PENDING,
            env,
        ),
        log_level=_enum_setting(
            LogLevel, "log_level", log_level, "METRANA_LOG_LEVEL", LogLevel.SUCCESS, env
        ),
        num_dispatch_workers=_int_setting(
            "num_dispatch_workers", num_dispatch_workers, None, 4, 1, env
        ),
        event_queue_max_size=_int_setting(
            "METRANA_EVENT_QUEUE_MAX_SIZE",
            event_queue_max_size,
            "METRANA_EVENT_QUEUE_MAX_SIZE",
            DEFAULT_EVENT_QUEUE_MAX_SIZE,
            0,
            env,
            MAX_EVENT_QUEUE_SIZE,
        ),
        dispatch_queue_max_size=_int_setting(
            "METRANA_DISPATCH_QUEUE_MAX_SIZE",
            None,
            "METRANA_DISPATCH_QUEUE_MAX_SIZE",
            DEFAULT_DISPATCH_QUEUE_MAX_SIZE,
            1,
            env,
        ),
        error_queue_max_size=_int_setting(
            "METRANA_ERROR_QUEUE_MAX_SIZE",
            None,
            "METRANA_ERROR_QUEUE_MAX_SIZE",
            DEFAULT_ERROR_QUEUE_MAX_SIZE,
            1,
            env,
        ),
        close_timeout=_float_setting(
            "close_timeout", close_timeout, "METRANA_CLOSE_TIMEOUT", DEFAULT_CLOSE_TIMEOUT, env
        ),
        init_timeout=_float_setting(
            "init_timeout", None, "METRANA_INIT_TIMEOUT", DEFAULT_INIT_TIMEOUT, env
        ),
        block_timeout=_float_setting(
            "block_timeout", None, "METRANA_BLOCK_TIMEOUT", DEFAULT_BLOCK_TIMEOUT, env
        ),
        system_metrics=_bool_setting(
            "system_metrics", system_metrics, "METRANA_SYSTEM_METRICS", False, env
        ),
        system_metrics_interval=_float_setting(
            "system_metrics_interval", None, "METRANA_SYSTEM_METRICS_INTERVAL", 5.0, env
        ),
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool_setting(
    setting: str, argument: Any, env_name: str, default: bool, environ: Mapping[str, str]
) -> bool:
    value, source = _pick(argument, env_name, environ)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise MetranaConfigError(
        f"invalid {setting} {value!r} (from {source}); accepted values: True/False, "
        f"or {env_name}=1/0 (true/false, yes/no, on/off)"
    )


def retry_policy(environ: Mapping[str, str] | None = None) -> RetryPolicy:
    """The retry budget: ``METRANA_RETRY_MAX_ATTEMPTS`` (default 8) and
    ``METRANA_RETRY_MAX_ELAPSED`` seconds (default 60)."""
    env = os.environ if environ is None else environ
    defaults = RetryPolicy()
    return RetryPolicy(
        max_attempts=_int_setting(
            "METRANA_RETRY_MAX_ATTEMPTS",
            None,
            "METRANA_RETRY_MAX_ATTEMPTS",
            defaults.max_attempts,
            1,
            env,
        ),
        max_elapsed=_float_setting(
            "METRANA_RETRY_MAX_ELAPSED",
            None,
            "METRANA_RETRY_MAX_ELAPSED",
            defaults.max_elapsed,
            env,
        ),
    )


def metrana_home(environ: Mapping[str, str] | None = None) -> Path:
    """``METRANA_HOME`` (default ``~/.metrana``): the embedded store and the spools."""
    env = os.environ if environ is None else environ
    return Path(env.get("METRANA_HOME") or Path.home() / ".metrana").expanduser().resolve()


def default_store_path(environ: Mapping[str, str] | None = None) -> str:
    """The embedded SQLite store: ``METRANA_HOME/store.sqlite``."""
    return str(metrana_home(environ) / "store.sqlite")


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``metrana login`` keeps ``auth.json``: ``METRANA_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/metrana``, else ``~/.config/metrana``."""
    env = os.environ if environ is None else environ
    if env.get("METRANA_CONFIG_DIR"):
        return Path(env["METRANA_CONFIG_DIR"]).expanduser()
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]).expanduser() / "metrana"
    return Path.home() / ".config" / "metrana"


def api_host(
    argument: str | None = None,
    saved: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The REST client's server: the argument, else the host saved by ``metrana login`` (for
    ``api_key="local"``), else ``METRANA_HOST``, else ``http://127.0.0.1:8765``; an http(s) URL,
    returned without a trailing slash."""
    env = os.environ if environ is None else environ
    if argument:
        raw, source = argument, "argument"
    elif saved:
        raw, source = saved, "auth.json"
    elif env.get("METRANA_HOST"):
        raw, source = env["METRANA_HOST"], "environment variable METRANA_HOST"
    else:
        return DEFAULT_API_HOST
    url = raw.strip()
    if not (url.startswith("http://") or url.startswith("https://")) or "\x00" in url:
        raise MetranaConfigError(
            f"invalid host {raw!r} (from {source}); accepted values: an http(s):// URL"
        )
    return url.rstrip("/")
