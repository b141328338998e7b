"""The REST client of the Syvain Metrics API, and the payload types it sends and returns::

    from metrana.api import Client

    with Client("local") as client:  # after `metrana login --host URL --api-key KEY`
        for folder in client.list_folders().folders:
            print(folder.path_name)

:class:`Client` has the signatures and answers of the Syvain package's
``SyvainMetricsApiClient``; :class:`AsyncClient` has the same methods as coroutines. Errors
derive from :class:`MetricsApiError` (the tree is drawn in :mod:`metrana._errors`).
"""

from __future__ import annotations

from .._retry import RetryPolicy
from ._async_client import AsyncClient
from ._auth import (
    ClientCredentials,
    credentials_path,
    delete_credentials,
    load_credentials,
    save_credentials,
)
from ._chart_types import (
    ChartMark,
    ChartSeries,
    ChartSeriesResponse,
    LoginToken,
    LoginTokenResponse,
)
from ._client import Client
from ._errors import (
    MetricsApiAuthError,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiResponseError,
    MetricsApiValidationError,
)
from ._types import (
    Annotation,
    AnnotationsResponse,
    AuthStatusResponse,
    ComparisonMetricSeries,
    Experiment,
    ExperimentAnnotationResponse,
    ExperimentResponse,
    ExperimentsResponse,
    ExperimentStatusError,
    Folder,
    FolderContentsResponse,
    FolderResponse,
    FoldersResponse,
    IngestionKey,
    IngestionKeyCreateResponse,
    IngestionKeyResponse,
    IngestionKeysResponse,
    IngestResponse,
    MetricCatalogItem,
    MetricCatalogMetadataValue,
    MetricCatalogResponse,
    MetricCatalogValues,
    MetricCatalogValuesResponse,
    MetricCreateInput,
    MetricEventRow,
    RowsResponse,
    RunHandshakeRequest,
    RunHandshakeResponse,
    SeriesLastStep,
)

__all__ = [
    "Annotation",
    "AnnotationsResponse",
    "AsyncClient",
    "AuthStatusResponse",
    "ChartMark",
    "ChartSeries",
    "ChartSeriesResponse",
    "Client",
    "ClientCredentials",
    "ComparisonMetricSeries",
    "Experiment",
    "ExperimentAnnotationResponse",
    "ExperimentResponse",
    "ExperimentStatusError",
    "ExperimentsResponse",
    "Folder",
    "FolderContentsResponse",
    "FolderResponse",
    "FoldersResponse",
    "IngestResponse",
    "IngestionKey",
    "IngestionKeyCreateResponse",
    "IngestionKeyResponse",
    "IngestionKeysResponse",
    "LoginToken",
    "LoginTokenResponse",
    "MetricCatalogItem",
    "MetricCatalogMetadataValue",
    "MetricCatalogResponse",
    "MetricCatalogValues",
    "MetricCatalogValuesResponse",
    "MetricCreateInput",
    "MetricEventRow",
    "MetricsApiAuthError",
    "MetricsApiError",
    "MetricsApiRequestError",
    "MetricsApiResponseError",
    "MetricsApiValidationError",
    "RetryPolicy",
    "RowsResponse",
    "RunHandshakeRequest",
    "RunHandshakeResponse",
    "SeriesLastStep",
    "credentials_path",
    "delete_credentials",
    "load_credentials",
    "save_credentials",
]
