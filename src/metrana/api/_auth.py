"""What a client's ``auth=`` resolves to: an API key and the origin of its server.

``auth`` is an API key, ``"local"``, or a :class:`ClientCredentials` (or any object with its
attributes, such as the Syvain package's own). ``"local"`` reads ``auth.json``, the file the
Syvain CLI writes and ``metrana login`` writes too::

    {"apiKey": "mtr_...", "host": "http://127.0.0.1:8765", "orgId": "1", "loginAt": 1767225600000}

at ``$XDG_CONFIG_HOME/syvain-metrics/auth.json``, else ``~/.config/syvain-metrics/auth.json``
(``METRANA_CONFIG_DIR`` replaces the directory). Only ``apiKey`` is required. The file is
written with mode 0600 and replaced atomically (a temporary file in the same directory,
fsync'd, then renamed) while holding a ``filelock`` beside it, so two concurrent logins never
leave a torn or world-readable file.

A host is an origin, ``scheme://host[:port]``, as the Syvain client requires: the API lives at
the root of its server.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec
from filelock import FileLock

from .._config import api_host, config_dir
from ._errors import MetricsApiAuthError

__all__ = [
    "ClientCredentials",
    "credentials_path",
    "delete_credentials",
    "load_credentials",
    "save_credentials",
]

AUTH_FILE = "auth.json"
LOCAL = "local"
LOGIN_HINT = "Run `metrana login --host URL --api-key KEY`."
LOCK_TIMEOUT = 30.0


class ClientCredentials(msgspec.Struct, frozen=True):
    """An API key and the server it is for, as a client holds them. ``source`` says where
    they came from: ``"api_key"`` (given) or ``"local"`` (``auth.json``)."""

    api_key: str
    host: str
    org_id: str | None = None
    login_at: int | None = None  # when `login` wrote them, ms since the epoch
    source: str = "api_key"

    def __repr__(self) -> str:  # never print the key
        return (
            f"ClientCredentials(api_key='***', host={self.host!r}, org_id={self.org_id!r}, "
            f"login_at={self.login_at!r}, source={self.source!r})"
        )


class CredentialsLike(Protocol):
    """What ``auth=`` accepts besides a string: an object with these attributes (the Syvain
    package's ``ClientCredentials`` has them)."""

    @property
    def api_key(self) -> str: ...

    @property
    def host(self) -> str: ...


class _AuthFile(msgspec.Struct, omit_defaults=True):
    api_key: str = msgspec.field(name="apiKey")
    host: str | None = None
    org_id: str | None = msgspec.field(default=None, name="orgId")
    login_at: int | None = msgspec.field(default=None, name="loginAt")


def normalize_host(value: str | None, default: str | None = None) -> str:
    """``value`` (else ``default``, else :func:`default_host`) as ``scheme://netloc``;
    :class:`MetricsApiAuthError`, in the Syvain client's words, for what is not an http(s)
    origin."""
    raw = (value or "").strip() or default or default_host()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise MetricsApiAuthError("Metrics API host must be a valid HTTP(S) origin.") from None
    if parts.scheme not in ("http", "https"):
        raise MetricsApiAuthError("Metrics API host must use http or https.")
    if not parts.netloc or parts.username is not None or parts.password is not None:
        raise MetricsApiAuthError("Metrics API host must be a valid HTTP(S) origin.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MetricsApiAuthError("Metrics API host must not include a path, query, or fragment.")
    return f"{parts.scheme}://{parts.netloc}"


def default_host() -> str:
    """The host when neither ``host=`` nor ``auth.json`` gives one: ``METRANA_HOST``, else
    ``http://127.0.0.1:8765`` (the Syvain client's is its own service)."""
    return api_host()


def resolve_credentials(auth: str | CredentialsLike, host: str | None) -> ClientCredentials:
    """The key and origin a client uses; ``host`` overrides the one ``auth`` carries."""
    if isinstance(auth, str):
        if auth == LOCAL:
            saved = load_credentials()
            if host is None:
                return saved
            return msgspec.structs.replace(saved, host=normalize_host(host, saved.host))
        if auth == "local-dev":
            raise MetricsApiAuthError(
                "auth='local-dev' is the Syvain development service; Metrana has none: "
                "use 'local' or an API key."
            )
        api_key = auth.strip()
        if not api_key:
            raise MetricsApiAuthError("Metrics API key must not be empty.")
        return ClientCredentials(api_key, normalize_host(host))
    given_key = getattr(auth, "api_key", None)
    given_host = getattr(auth, "host", None)
    if not isinstance(given_key, str) or not isinstance(given_host, str):
        raise MetricsApiAuthError(
            f"auth must be an API key, 'local' or a ClientCredentials, not {type(auth).__name__}."
        )
    if not given_key.strip():
        raise MetricsApiAuthError("Metrics API key must not be empty.")
    org_id = getattr(auth, "org_id", None)
    login_at = getattr(auth, "login_at", None)
    source = getattr(auth, "source", "api_key")
    return ClientCredentials(
        given_key.strip(),
        normalize_host(host or given_host, given_host),
        org_id if isinstance(org_id, str) else None,
        login_at if isinstance(login_at, int) else None,
        source if isinstance(source, str) else "api_key",
    )


def credentials_path() -> Path:
    """The ``auth.json`` that ``Client("local")`` reads and ``metrana login`` writes."""
    return config_dir() / AUTH_FILE


def _lock(path: Path) -> FileLock:
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=LOCK_TIMEOUT)


def load_credentials() -> ClientCredentials:
    """The credentials of ``auth.json`` (``source="local"``); :class:`MetricsApiAuthError` when
    the file is missing, not a JSON object, or has no ``apiKey``. As in the Syvain client, an
    ``orgId`` that is not a string or a ``loginAt`` that is not an integer is ignored."""
    path = credentials_path()
    try:
        raw: Any = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        raise MetricsApiAuthError(
            f"Metrics CLI auth file was not found at {path}. {LOGIN_HINT}"
        ) from None
    except OSError as error:
        raise MetricsApiAuthError(f"Cannot read {path} ({error}). {LOGIN_HINT}") from None
    except msgspec.DecodeError:
        raise MetricsApiAuthError(
            f"Metrics CLI auth file is not valid JSON: {path}. {LOGIN_HINT}"
        ) from None
    if not isinstance(raw, dict):
        raise MetricsApiAuthError(
            f"Metrics CLI auth file must contain a JSON object: {path}. {LOGIN_HINT}"
        )
    api_key = raw.get("apiKey")
    if not isinstance(api_key, str) or not api_key:
        raise MetricsApiAuthError(
            f"Metrics CLI auth file does not contain apiKey: {path}. {LOGIN_HINT}"
        )
    host, org_id, login_at = raw.get("host"), raw.get("orgId"), raw.get("loginAt")
    return ClientCredentials(
        api_key=api_key,
        host=normalize_host(host if isinstance(host, str) else None),
        org_id=org_id if isinstance(org_id, str) and org_id else None,
        login_at=login_at if isinstance(login_at, int) and not isinstance(login_at, bool) else None,
        source=LOCAL,
    )


def save_credentials(host: str, api_key: str, org_id: str | None = None) -> Path:
    """Write ``auth.json`` for ``Client("local")`` (``loginAt`` is now); return its path.
    :class:`MetricsApiAuthError` for an empty key or a host that is not an http(s) origin."""
    host = normalize_host(host)
    if not api_key.strip():
        raise MetricsApiAuthError(f"Cannot save an empty API key. {LOGIN_HINT}")
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = _AuthFile(
        api_key=api_key.strip(), host=host, org_id=org_id, login_at=time.time_ns() // 1_000_000
    )
    data = msgspec.json.encode(content)
    with _lock(path):
        fd, temporary = tempfile.mkstemp(prefix=".auth-", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)  # mkstemp already uses 0600; say so regardless of umask
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_dir(path.parent)
    return path


def delete_credentials() -> bool:
    """Forget the saved credentials; whether there were any."""
    path = credentials_path()
    if not path.parent.is_dir():
        return False
    with _lock(path):
        try:
            path.unlink()
        except FileNotFoundError:
            return False
    return True


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
