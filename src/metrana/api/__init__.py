"""The typed REST client of a Metrana server, and the payload types it sends and returns::

    from metrana.api import Client

    with Client("local") as client:  # after `metrana login --host URL --api-key KEY`
        for project in client.list_folders():
            print(project.name)

:class:`AsyncClient` has the same methods as coroutines. Errors derive from
:class:`MetricsApiError` (see :mod:`metrana.api._errors` for the tree).
"""

from __future__ import annotations

from .._retry import RetryPolicy
from ._async_client import AsyncClient
from ._auth import (
    Credentials,
    credentials_path,
    delete_credentials,
    load_credentials,
    save_credentials,
)
from ._client import Client
from ._errors import (
    MetricsApiAuthError,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiResponseError,
)
from ._types import (
    Annotation,
    ComparisonMetricSeries,
    Experiment,
    ExperimentStatus,
    Folder,
    IngestionKey,
    MetricCatalogValues,
    MetricCreateInput,
    MetricEventRow,
    PointValue,
    RunHandshakeRequest,
    RunHandshakeResponse,
    Scale,
    SeriesLastStep,
    decode_value,
    encode_value,
)

__all__ = [
    "Annotation",
    "AsyncClient",
    "Client",
    "ComparisonMetricSeries",
    "Credentials",
    "Experiment",
    "ExperimentStatus",
    "Folder",
    "IngestionKey",
    "MetricCatalogValues",
    "MetricCreateInput",
    "MetricEventRow",
    "MetricsApiAuthError",
    "MetricsApiError",
    "MetricsApiRequestError",
    "MetricsApiResponseError",
    "PointValue",
    "RetryPolicy",
    "RunHandshakeRequest",
    "RunHandshakeResponse",
    "Scale",
    "SeriesLastStep",
    "credentials_path",
    "decode_value",
    "delete_credentials",
    "encode_value",
    "load_credentials",
    "save_credentials",
]
