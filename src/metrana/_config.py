# Over 400 lines: the one table of every setting is 230 of them, and it stays whole by design.
"""Configuration, in one table: every ``METRANA_*`` variable is declared, parsed, validated and
documented here (:data:`SETTINGS`), and read nowhere else. The parsers of raw values (numbers,
sizes with units, URLs...) are in ``_config_parse``.

``init()`` arguments win over environment variables, which win over defaults. ``init()``
validates every variable of the table, including those that only the dispatcher or the REST
client reads, so that a bad value fails at once, naming the setting, the value and what is
accepted, instead of in another process later. The settings table of
``docs/getting-started.md`` is generated from this one (``scripts/gen_settings_doc.py``; a
test checks that they agree).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ._config_parse import (
    Invalid,
    boolean,
    byte_size,
    enum_value,
    http_url,
    integer,
    json_object,
    seconds,
    text,
    user_path,
)
from ._enums import (
    BackpressureStrategy,
    CloseStrategy,
    ErrorStrategy,
    LogLevel,
    ResumeStrategy,
    _NamedEnum,
)
from ._errors import MetranaConfigError, MetranaMissingApiKeyError
from ._logging import logger
from ._retry import RetryPolicy

# A folder name or an experiment slug of the REST API: 1 to 200 characters.
RUN_NAME_LENGTH = 200

__all__: list[str] = []  # internal: the settings are documented, the module is not public

OFFLINE = "offline"
# What a server's URL may be: the API lives at the root of its origin.
ORIGIN = (
    "an http(s):// origin, scheme://host[:port] (the API lives at the root of its server: "
    "a path, query, fragment or user is not allowed)"
)
DEFAULT_API_HOST = "http://127.0.0.1:8765"
# A bounded ring is one segment of 48 bytes an event, and a segment holds at most 256 MiB.
MAX_EVENT_QUEUE_SIZE = 5_000_000
ORCHESTRATION_VARIABLES = ("METRANA_ORCHESTRATION_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")
MIN_SPOOL_BYTES = 1024


def _ingestion_url(raw: Any) -> str | None:
    """METRANA_INGESTION_URL: None for the embedded store, OFFLINE, or an http(s) URL."""
    if not isinstance(raw, str):
        raise Invalid
    url = raw.strip()
    if url.lower() in ("", "embedded", "local"):
        return None
    if url.lower() == OFFLINE:
        return OFFLINE
    return http_url(url)


class Setting(msgspec.Struct, frozen=True):
    """One setting: its variable, its ``init()`` argument, its parser and its documentation."""

    variable: str | None  # None: an init() argument without a variable
    argument: str | None  # how init() (or close()) takes it; None: a variable only
    parse: Callable[[Any], Any]
    default: Any
    accepted: str  # what a bad value's error says is accepted
    default_text: str  # the default, for the docs
    meaning: str  # for the docs
    validated: bool = True  # False: read but never refused (its value is free text)

    @property
    def name(self) -> str:
        """How errors name the setting: its argument, else its variable."""
        return self.argument or self.variable or "?"


def _enum_setting(
    variable: str, argument: str, cls: type[_NamedEnum], default: _NamedEnum, meaning: str
) -> Setting:
    return Setting(
        variable,
        argument,
        enum_value(cls),
        default,
        cls.accepted(),
        f"`{default.value}`",
        meaning,
    )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "METRANA_HOME",
        None,
        user_path,
        None,
        "a directory path",
        "`~/.metrana`",
        "Root of the embedded store (`store.sqlite`) and of the disk spool (`spool/`).",
    ),
    Setting(
        "METRANA_INGESTION_URL",
        "ingestion_url",
        _ingestion_url,
        None,
        f"{ORIGIN}, 'offline', or unset for the embedded store",
        "unset",
        'Where data goes. Unset, `""`, `embedded` or `local`: the embedded store. `offline`: '
        "everything goes to the disk spool. An `http(s)://` URL: a Metrana server "
        "([server.md](server.md); needs an API key).",
    ),
    Setting(
        "METRANA_API_KEY",
        "api_key",
        text,
        None,
        "a non-empty string",
        "unset",
        "An API key of the server (`metrana serve`, `metrana keys create`): it opens every "
        "workspace of its organization. Needed with an "
        "`http(s)://` target (the first positional argument of `init()`). Without it, `init()` "
        "raises `MetranaMissingApiKeyError`. The credentials saved by `metrana login` are not "
        "used here.",
    ),
    Setting(
        "METRANA_ORCHESTRATION_ID",
        None,
        text,
        None,
        "a non-empty string",
        "see meaning",
        "The job's identity. Processes with the same run names and orchestration id share one "
        "session. The fallbacks are `TORCHELASTIC_RUN_ID`, then `SLURM_JOB_ID`, then a random "
        "token that is generated and exported to `METRANA_ORCHESTRATION_ID` so that child "
        "processes inherit it ([multiprocess.md](multiprocess.md)).",
    ),
    Setting(
        "METRANA_HOST_ID",
        None,
        text,
        None,
        "a non-empty string",
        "the host name",
        "This host's identity in a job: part of the session key (one dispatcher per run and "
        "host), of the dispatcher's producer id and of the `host` label of system metrics. Set "
        "it to tell apart hosts that share a host name (containers), or to run two hosts of "
        "one job on one machine ([deployment.md](deployment.md#multi-host-jobs)).",
    ),
    _enum_setting(
        "METRANA_BACKPRESSURE_STRATEGY",
        "backpressure_strategy",
        BackpressureStrategy,
        BackpressureStrategy.DROP_NEW,
        "What `log()` does when the ring is full: `DropNew`, `Block`, `Raise`.",
    ),
    _enum_setting(
        "METRANA_ERROR_MODES",
        "error_strategy",
        ErrorStrategy,
        ErrorStrategy.WARN,
        "How delivery errors surface: `Warn`, `Silent`, `RaiseOnLog`, `RaiseOnClose`. The "
        "variable is named `..._ERROR_MODES`, not `..._ERROR_STRATEGY`.",
    ),
    _enum_setting(
        "METRANA_CLOSE_STRATEGY",
        "close_strategy",
        CloseStrategy,
        CloseStrategy.COMPLETE_PENDING,
        "What `close()` does with undelivered points: `CompletePending`, `Immediate`, "
        "`CompleteAll` (also `close(close_strategy=)`).",
    ),
    _enum_setting(
        "METRANA_RESUME_STRATEGY",
        "resume_strategy",
        ResumeStrategy,
        ResumeStrategy.ALLOW,
        "`Allow` creates or resumes the run. `Never` refuses a run that another job created.",
    ),
    _enum_setting(
        "METRANA_LOG_LEVEL",
        "log_level",
        LogLevel,
        LogLevel.SUCCESS,
        "Level of the `metrana` logger: `Success`, `Trace`, `Debug`, `Info`, `Warn`, `Error`, "
        "`Critical`, `Off`.",
    ),
    Setting(
        "METRANA_SYSTEM_METRICS",
        "system_metrics",
        boolean,
        False,
        "True/False, or 1/0 (true/false, yes/no, on/off)",
        "off",
        "`True`, or `1`/`true`/`yes`/`on` (and `0`/`false`/`no`/`off`), has the dispatcher "
        "sample CPU, memory, threads and open files of every process "
        "([System metrics](#system-metrics)).",
    ),
    Setting(
        "METRANA_SYSTEM_METRICS_INTERVAL",
        None,
        seconds,
        5.0,
        "a number of seconds > 0",
        "`5` s",
        "Seconds between two system samples. The dispatcher checks every 0.5 s, so shorter "
        "intervals sample every 0.5 s.",
    ),
    Setting(
        None,
        "num_dispatch_workers",
        integer(1),
        4,
        "an integer >= 1",
        "`4` (≥ 1)",
        "Concurrent requests to a remote target. It has no effect on the embedded store, "
        "which takes one batch at a time.",
    ),
    Setting(
        "METRANA_EVENT_QUEUE_MAX_SIZE",
        None,
        integer(0, MAX_EVENT_QUEUE_SIZE),
        100_000,
        f"an integer from 0 to {MAX_EVENT_QUEUE_SIZE:_}",
        "`100000` (0 to 5,000,000)",
        "Capacity of each process's ring, in records: one per point, plus one per series "
        "declaration and one for the close marker. `0` means unbounded: the ring grows in "
        "4 MiB segments.",
    ),
    Setting(
        "METRANA_DISPATCH_QUEUE_MAX_SIZE",
        None,
        integer(1),
        64,
        "an integer >= 1",
        "`64` (≥ 1)",
        "Maximum number of batches in flight. The dispatcher uses `min(this, "
        "num_dispatch_workers)` for a remote target and 1 for the embedded store.",
    ),
    Setting(
        "METRANA_ERROR_QUEUE_MAX_SIZE",
        None,
        integer(1),
        1_000,
        "an integer >= 1",
        "`1000` (≥ 1)",
        "Distinct errors kept on the session's error channel. Older ones are dropped and counted.",
    ),
    Setting(
        "METRANA_CLOSE_TIMEOUT",
        None,
        seconds,
        30.0,
        "a number of seconds > 0",
        "`30` s",
        "How long `close()`, and the automatic close at exit, wait (also `close(timeout=)`).",
    ),
    Setting(
        "METRANA_INIT_TIMEOUT",
        None,
        seconds,
        30.0,
        "a number of seconds > 0",
        "`30` s",
        "How long `init()` waits to start the dispatcher and for its handshake.",
    ),
    Setting(
        "METRANA_BLOCK_TIMEOUT",
        None,
        seconds,
        60.0,
        "a number of seconds > 0",
        "`60` s",
        'How long `log()` waits for room under `backpressure_strategy="Block"`.',
    ),
    Setting(
        "METRANA_RETRY_MAX_ATTEMPTS",
        None,
        integer(1),
        RetryPolicy().max_attempts,
        "an integer >= 1",
        "`8` (≥ 1)",
        "Attempts per HTTP request: each batch of the dispatcher, each call of `metrana.Client`.",
    ),
    Setting(
        "METRANA_RETRY_MAX_ELAPSED",
        None,
        seconds,
        RetryPolicy().max_elapsed,
        "a number of seconds > 0",
        "`60` s",
        "Time budget per HTTP request, counted from its first attempt.",
    ),
    Setting(
        "METRANA_SPOOL_MAX_BYTES",
        None,
        byte_size(MIN_SPOOL_BYTES),
        1 << 30,
        f"a size of at least {MIN_SPOOL_BYTES} bytes: bytes, or a number with a unit "
        "(KiB, MiB, GiB, TiB; KB, MB, GB, TB)",
        "`1GiB`",
        "Size cap of one session's disk spool, in bytes or with a unit (`512MiB`, `2GB`).",
    ),
    Setting(
        "METRANA_SESSION_ROOT",
        None,
        user_path,
        None,
        "a directory path",
        "`/dev/shm/metrana-<uid>`",
        "Where session directories (rings, locks, dispatcher log) live; the temp dir when "
        "`/dev/shm` is not writable.",
    ),
    Setting(
        "METRANA_STORE",
        None,
        text,
        None,
        "a SQLite file path or a `postgresql://` URL",
        "`$METRANA_HOME/store.sqlite`",
        "The store of `metrana serve`, `keys`, `runs` and `export` (their `--store`): a SQLite "
        "file, or a PostgreSQL database shared by several server replicas "
        "(`postgresql://user:password@host/db`).",
    ),
    Setting(
        "METRANA_HOST",
        None,
        http_url,
        DEFAULT_API_HOST,
        ORIGIN,
        f"`{DEFAULT_API_HOST}`",
        "The server of `metrana.Client` when no `host=` is given and no `metrana login` host "
        "applies ([rest-client.md](rest-client.md#which-host)).",
    ),
    Setting(
        "METRANA_CONFIG_DIR",
        None,
        user_path,
        None,
        "a directory path",
        "`$XDG_CONFIG_HOME/syvain-metrics`",
        'Where `metrana login` saves `auth.json` for `Client("local")` (the Syvain CLI\'s file); '
        "else `~/.config/syvain-metrics`.",
    ),
)

_BY_KEY: dict[str, Setting] = {}
for _setting in SETTINGS:
    for _key in (_setting.variable, _setting.argument):
        if _key is not None:
            _BY_KEY[_key] = _setting


def setting(key: str) -> Setting:
    """The setting of a variable or ``init()`` argument name."""
    return _BY_KEY[key]


def read(key: str, argument: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """The value of setting ``key`` (a variable or argument name): ``argument`` if given, else
    its variable if set and not empty, else its default; validated."""
    entry = _BY_KEY[key]
    env = os.environ if environ is None else environ
    if argument is not None:
        raw, source = argument, "argument"
    elif entry.variable is not None and env.get(entry.variable, "") != "":
        raw, source = env[entry.variable], f"environment variable {entry.variable}"
    else:
        return entry.default
    try:
        return entry.parse(raw)
    except Invalid:
        shown = repr(raw) if not isinstance(raw, str) or len(raw) <= 60 else repr(raw[:40]) + "..."
        raise MetranaConfigError(
            f"invalid {entry.name} {shown} (from {source}); accepted values: {entry.accepted}"
        ) from None


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Validate every ``METRANA_*`` variable of the table (``init()`` calls this); warn about a
    ``METRANA_*`` variable that no setting has (a misspelt name is otherwise silently
    ignored)."""
    env = os.environ if environ is None else environ
    for entry in SETTINGS:
        if entry.variable is not None:
            read(entry.variable, None, env)
    known = {entry.variable for entry in SETTINGS}
    for name in env:
        if name.startswith("METRANA_") and name not in known:
            logger.warning(
                "unknown environment variable %s ignored; Metrana's variables are listed in "
                "docs/getting-started.md (settings)",
                name,
            )


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
    # init(config=...): merged into the run's metadata by the dispatcher's handshake
    metadata: dict[str, Any] = {}
    host_id: str = ""  # METRANA_HOST_ID, else the host name (see host_id())

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


def host_id(environ: Mapping[str, str] | None = None) -> str:
    """This host's identity in a job: ``METRANA_HOST_ID``, else the host name."""
    chosen: str | None = read("METRANA_HOST_ID", None, environ)
    return chosen or socket.gethostname()


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


def _name_setting(setting_name: str, value: Any, required: bool) -> str | None:
    """A run's address part: a folder name (workspace, project, experiment) or the run's
    slug, as the API bounds them (1 to 200 characters; a folder name without "/", which
    separates the names of a folder path)."""
    if value is None and not required:
        return None
    folder = setting_name != "run_name"
    accepted = f"a non-empty string of at most {RUN_NAME_LENGTH} characters without NUL" + (
        ' or "/"' if folder else ""
    )
    if not isinstance(value, str) or not value.strip():
        raise MetranaConfigError(f"invalid {setting_name} {value!r}; accepted values: {accepted}")
    if len(value) > RUN_NAME_LENGTH or "\x00" in value or (folder and "/" in value):
        raise MetranaConfigError(
            f"invalid {setting_name} {value[:40]!r}{'...' if len(value) > 40 else ''}; "
            f"accepted values: {accepted}"
        )
    return value


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
    config: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve and validate every setting of ``init()`` (and every variable of the table)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    run = RunIdentity(
        workspace_name=str(_name_setting("workspace_name", workspace_name, True)),
        project_name=str(_name_setting("project_name", project_name, True)),
        run_name=str(_name_setting("run_name", run_name, True)),
        experiment_name=_name_setting("experiment_name", experiment_name, False),
    )
    metadata = _run_config(config)
    check_environment(env)
    url = read("ingestion_url", ingestion_url, env)
    key = read("api_key", api_key, env)
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
        resume_strategy=read("resume_strategy", resume_strategy, env),
        backpressure_strategy=read("backpressure_strategy", backpressure_strategy, env),
        error_strategy=read("error_strategy", error_strategy, env),
        close_strategy=read("close_strategy", close_strategy, env),
        log_level=read("log_level", log_level, env),
        num_dispatch_workers=read("num_dispatch_workers", num_dispatch_workers, env),
        event_queue_max_size=read("METRANA_EVENT_QUEUE_MAX_SIZE", event_queue_max_size, env),
        dispatch_queue_max_size=read("METRANA_DISPATCH_QUEUE_MAX_SIZE", None, env),
        error_queue_max_size=read("METRANA_ERROR_QUEUE_MAX_SIZE", None, env),
        close_timeout=read("METRANA_CLOSE_TIMEOUT", close_timeout, env),
        init_timeout=read("METRANA_INIT_TIMEOUT", None, env),
        block_timeout=read("METRANA_BLOCK_TIMEOUT", None, env),
        system_metrics=read("system_metrics", system_metrics, env),
        system_metrics_interval=read("METRANA_SYSTEM_METRICS_INTERVAL", None, env),
        metadata=metadata,
        host_id=host_id(env),
    )


def _run_config(value: Any) -> dict[str, Any]:
    """``init(config=...)``: a JSON object, copied (see ``json_object``)."""
    try:
        return json_object(value)
    except Invalid as error:
        raise MetranaConfigError(
            f"invalid config: {error}; accepted values: a dict with str keys whose values are "
            "None, bool, int, finite float, str, or lists and dicts of those (at most 1 MiB "
            "as JSON)"
        ) from None


def retry_policy(environ: Mapping[str, str] | None = None) -> RetryPolicy:
    """The retry budget: ``METRANA_RETRY_MAX_ATTEMPTS`` and ``METRANA_RETRY_MAX_ELAPSED``."""
    return RetryPolicy(
        max_attempts=read("METRANA_RETRY_MAX_ATTEMPTS", None, environ),
        max_elapsed=read("METRANA_RETRY_MAX_ELAPSED", None, environ),
    )


def spool_max_bytes(environ: Mapping[str, str] | None = None) -> int:
    """``METRANA_SPOOL_MAX_BYTES``: the size cap of one session's spool."""
    value: int = read("METRANA_SPOOL_MAX_BYTES", None, environ)
    return value


def metrana_home(environ: Mapping[str, str] | None = None) -> Path:
    """``METRANA_HOME`` (default ``~/.metrana``): the embedded store and the spools."""
    home: Path | None = read("METRANA_HOME", None, environ)
    return (home or Path.home() / ".metrana").expanduser().resolve()


def default_store_path(environ: Mapping[str, str] | None = None) -> str:
    """The embedded SQLite store: ``METRANA_HOME/store.sqlite``."""
    return str(metrana_home(environ) / "store.sqlite")


def server_store(environ: Mapping[str, str] | None = None) -> str:
    """``METRANA_STORE``, else the embedded store: what ``metrana serve`` serves."""
    store: str | None = read("METRANA_STORE", None, environ)
    return store or default_store_path(environ)


def session_root_override(environ: Mapping[str, str] | None = None) -> Path | None:
    """``METRANA_SESSION_ROOT``, if set."""
    root: Path | None = read("METRANA_SESSION_ROOT", None, environ)
    return root


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``metrana login`` keeps ``auth.json``: ``METRANA_CONFIG_DIR``, else the Syvain
    CLI's directory, ``$XDG_CONFIG_HOME/syvain-metrics``, else ``~/.config/syvain-metrics``."""
    env = os.environ if environ is None else environ
    chosen: Path | None = read("METRANA_CONFIG_DIR", None, env)
    if chosen is not None:
        return chosen
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]).expanduser() / "syvain-metrics"
    return Path.home() / ".config" / "syvain-metrics"


def api_host(
    argument: str | None = None,
    saved: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The REST client's server: the argument, else the host saved by ``metrana login`` (for
    ``api_key="local"``), else ``METRANA_HOST``, else ``http://127.0.0.1:8765``; an http(s) URL,
    returned without a trailing slash."""
    if argument or saved:
        raw, source = (argument, "argument") if argument else (saved, "auth.json")
        try:
            return http_url(raw)
        except Invalid:
            raise MetranaConfigError(
                f"invalid host {raw!r} (from {source}); accepted values: {ORIGIN}"
            ) from None
    host: str = read("METRANA_HOST", None, environ)
    return host


def settings_markdown() -> str:
    """The settings table of the docs, generated from :data:`SETTINGS`."""
    rows = [
        "| variable | `init()` argument | default | meaning |",
        "|---|---|---|---|",
    ]
    for entry in SETTINGS:
        variable = f"`{entry.variable}`" if entry.variable else "—"
        argument = f"`{entry.argument}`" if entry.argument else "—"
        rows.append(f"| {variable} | {argument} | {entry.default_text} | {entry.meaning} |")
    return "\n".join(rows) + "\n"
