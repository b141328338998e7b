"""Local credentials: ``auth.json`` in the config dir (see :func:`metrana._config.config_dir`),
written by ``metrana login`` and read by ``Client("local")``.

The file has the Syvain client's format, ``{"apiKey": "...", "host": "...", "orgId": "...",
"loginAt": <ms>}`` (``apiKey`` required; a file of the older ``{"host", "api_key"}`` form is
still read), mode 0600, replaced atomically (a temporary
file in the same directory, fsync'd, then renamed) while holding a ``filelock`` beside it, so
that two concurrent logins never leave a torn or world-readable file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import msgspec
from filelock import FileLock

from .._config import api_host, config_dir
from ._errors import MetricsApiAuthError

__all__ = [
    "Credentials",
    "credentials_path",
    "delete_credentials",
    "load_credentials",
    "save_credentials",
]

AUTH_FILE = "auth.json"
LOGIN_HINT = "run `metrana login --host URL --api-key KEY`"
LOCK_TIMEOUT = 30.0


class Credentials(msgspec.Struct, frozen=True):
    """A server and the API key to present to it (``auth.json``, as the Syvain CLI writes it)."""

    api_key: str = msgspec.field(name="apiKey")
    host: str | None = None
    org_id: str | None = msgspec.field(default=None, name="orgId")
    login_at: int | None = msgspec.field(default=None, name="loginAt")  # ms since the epoch

    def __repr__(self) -> str:  # never print the key
        return f"Credentials(host={self.host!r}, api_key='***', org_id={self.org_id!r})"


class _LegacyCredentials(msgspec.Struct, frozen=True):
    host: str
    api_key: str


def credentials_path() -> Path:
    """The ``auth.json`` that ``Client("local")`` reads."""
    return config_dir() / AUTH_FILE


def _lock(path: Path) -> FileLock:
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=LOCK_TIMEOUT)


def save_credentials(host: str, api_key: str, org_id: str | None = None) -> Path:
    """Store ``host`` and ``api_key`` for ``Client("local")``; return the file written.

    Raises :class:`metrana.MetranaConfigError` for a host that is not an http(s) URL and
    :class:`MetricsApiAuthError` for an empty key.
    """
    host = api_host(host)
    if not api_key or not api_key.strip():
        raise MetricsApiAuthError(f"cannot save an empty API key; {LOGIN_HINT}")
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = Credentials(
        api_key=api_key.strip(), host=host, org_id=org_id, login_at=time.time_ns() // 1_000_000
    )
    data = msgspec.json.encode(credentials)
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


def load_credentials() -> Credentials:
    """The credentials saved by ``metrana login``; :class:`MetricsApiAuthError` (with the
    command to run) when the file is missing or does not hold a host and a key."""
    path = credentials_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MetricsApiAuthError(f"no local credentials at {path}; {LOGIN_HINT}") from None
    except OSError as error:
        raise MetricsApiAuthError(f"cannot read {path} ({error}); {LOGIN_HINT}") from None
    try:
        credentials = msgspec.json.decode(data, type=Credentials)
    except msgspec.ValidationError as error:
        try:
            legacy = msgspec.json.decode(data, type=_LegacyCredentials)
        except msgspec.DecodeError:
            raise MetricsApiAuthError(
                f"invalid credentials in {path} ({error}); {LOGIN_HINT}"
            ) from None
        credentials = Credentials(api_key=legacy.api_key, host=legacy.host)
    except msgspec.DecodeError as error:
        raise MetricsApiAuthError(f"{path} is not JSON ({error}); {LOGIN_HINT}") from None
    if not credentials.api_key.strip():
        raise MetricsApiAuthError(f"empty API key (apiKey) in {path}; {LOGIN_HINT}")
    return credentials


def delete_credentials() -> bool:
    """Forget the saved credentials (``metrana logout``); whether there were any."""
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
