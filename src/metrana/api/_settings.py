"""What :class:`Client` and :class:`AsyncClient` share besides their calls: the constructor's
settings, the attributes the Syvain client exposes, and its two alternative constructors."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .._config import retry_policy
from .._errors import MetranaConfigError
from .._retry import RetryPolicy
from ._auth import CredentialsLike, resolve_credentials
from ._operations import Operations

DEFAULT_TIMEOUT = 10.0
DEFAULT_INGEST_TIMEOUT = 60.0
DEFAULT_INGESTION_KEY_NAME = "SDK ingestion key"

C = TypeVar("C", bound="ClientSettings[Any]")
TransportT = TypeVar("TransportT")


def _seconds(setting: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetranaConfigError(f"{setting} must be a number of seconds, not {value!r}.")
    if not value > 0:  # NaN too
        raise MetranaConfigError(f"{setting} must be greater than 0.")
    return float(value)


class ClientSettings(Generic[TransportT]):
    """The settings of a client: its credentials, timeouts and retry policy.

    ``auth`` is an API key, ``"local"`` (``auth.json``, written by ``metrana login``) or a
    :class:`ClientCredentials`; ``host`` overrides the host it carries (else ``METRANA_HOST``,
    else ``http://127.0.0.1:8765``). ``timeout`` applies to ordinary calls, ``ingest_timeout``
    to ``ingest_metrics``; ``ingestion_key_name`` names the ingestion keys the client mints.
    Metrana's: ``retry``, the retry policy (default from ``METRANA_RETRY_*``), and
    ``transport``, the ``httpx`` transport of the client's connection pool (see
    :meth:`_connect`).
    """

    def __init__(
        self,
        auth: str | CredentialsLike = "local",
        *,
        host: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
        ingestion_key_name: str = DEFAULT_INGESTION_KEY_NAME,
        retry: RetryPolicy | None = None,
        transport: TransportT | None = None,
    ) -> None:
        seconds = _seconds("timeout", timeout)
        ingest_seconds = _seconds("ingest_timeout", ingest_timeout)
        if not ingestion_key_name:
            raise MetranaConfigError("ingestion_key_name must not be empty.")
        credentials = resolve_credentials(auth, host)
        self._org_id = credentials.org_id
        self._login_at = credentials.login_at
        self._auth_source = credentials.source
        self._ops = Operations(
            host=credentials.host,
            api_key=credentials.api_key,
            timeout=seconds,
            ingest_timeout=ingest_seconds,
            retry=retry_policy() if retry is None else retry,
            ingestion_key_name=ingestion_key_name,
        )
        self._connect(transport)

    def _connect(self, transport: TransportT | None) -> None:
        """Open the connection pool (the network's, or ``transport``'s)."""
        raise NotImplementedError

    @classmethod
    def from_api_key(
        cls: type[C],
        api_key: str,
        *,
        host: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
        **options: Any,
    ) -> C:
        """A client presenting ``api_key`` (``options``: the constructor's others)."""
        return cls(api_key, host=host, timeout=timeout, ingest_timeout=ingest_timeout, **options)

    @classmethod
    def from_local(
        cls: type[C],
        *,
        host: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
        **options: Any,
    ) -> C:
        """A client with the credentials of ``auth.json`` (see ``metrana login``)."""
        return cls("local", host=host, timeout=timeout, ingest_timeout=ingest_timeout, **options)

    @property
    def api_key(self) -> str:
        """The API key presented on every call but ingestion."""
        return self._ops.api_key

    @property
    def host(self) -> str:
        """The server's origin, ``scheme://host[:port]`` (the API is under ``/api/v1``)."""
        return self._ops.host

    @property
    def org_id(self) -> str | None:
        """The organization ``auth.json`` names, if any (not checked with the server)."""
        return self._org_id

    @property
    def login_at(self) -> int | None:
        """When ``auth.json`` was written (ms since the epoch), if known."""
        return self._login_at

    @property
    def auth_source(self) -> str:
        """Where the key came from: ``"api_key"`` (given) or ``"local"`` (``auth.json``)."""
        return self._auth_source

    @property
    def timeout(self) -> float:
        """Seconds for each ordinary call."""
        return self._ops.timeout

    @property
    def ingest_timeout(self) -> float:
        """Seconds for each ``ingest_metrics`` call."""
        return self._ops.ingest_timeout

    @property
    def ingestion_key_name(self) -> str:
        """The name of the ingestion keys this client mints."""
        return self._ops.ingestion_key_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r})"
