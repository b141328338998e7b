"""A call's arguments as the request types of :mod:`._types`, checked before anything is sent.

As in the Syvain client, a request object is accepted as it is or as a mapping of its fields;
either way unknown fields, lengths and bounds are checked by the type itself (the server checks
with the same types), and numbers must be finite (a metric's value, every number in
metadata). What is refused raises :class:`MetricsApiValidationError` with where it is, in
msgspec's notation (``- at `$.data[3].value```).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from . import _types as t
from ._errors import MetricsApiValidationError

T = TypeVar("T")


def fields_of(value: object, kind: type[msgspec.Struct], what: str) -> Any:
    """A request object, or a mapping of its fields, as plain fields (to be checked)."""
    if isinstance(value, kind):
        return msgspec.to_builtins(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise MetricsApiValidationError(
        f"invalid {what}: expected a {kind.__name__} or a mapping, not {type(value).__name__}"
    )


def checked(kind: type[T], what: str, fields: Any) -> T:
    """``fields`` as a ``kind``, or :class:`MetricsApiValidationError` naming ``what``."""
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as error:
        raise MetricsApiValidationError(f"invalid {what}: {error}") from None


def check_finite_metadata(metadata: t.Json, what: str, at: str = "$.metadata") -> None:
    """Refuse a NaN or an infinity anywhere in ``metadata`` (JSON cannot carry them)."""
    if found := t.non_finite_path(metadata):
        raise MetricsApiValidationError(
            f"invalid {what}: metadata must contain only finite numbers - at `{at}.{found}`"
        )


def folder_patch(name: str | None, parent_id: str | msgspec.UnsetType | None) -> t.FolderPatch:
    """The body of ``patch_folder``: ``name`` unless None, ``parent_id`` unless unset; at least
    one of them."""
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    if parent_id is not msgspec.UNSET:
        fields["parent_id"] = parent_id
    if not fields:
        raise MetricsApiValidationError(
            "invalid patch_folder request: give a name or a parent_id (None: the top level)"
        )
    return checked(t.FolderPatch, "patch_folder request", fields)


def experiment_create(
    slug: str,
    description: str,
    metadata: Mapping[str, Any] | None,
    folder_id: str | msgspec.UnsetType | None,
) -> t.ExperimentCreate:
    """The body of ``create_experiment`` (``folder_id`` unset: the server's choice, the
    root)."""
    fields: dict[str, Any] = {
        "slug": slug,
        "description": description,
        "metadata": dict(metadata or {}),
    }
    if folder_id is not msgspec.UNSET:
        fields["folder_id"] = folder_id
    body = checked(t.ExperimentCreate, "create_experiment request", fields)
    check_finite_metadata(body.metadata, "create_experiment request")
    return body


def status_update(
    status: str,
    error: t.ExperimentStatusError | Mapping[str, Any] | None,
    timestamp_ms: int | None,
) -> t.ExperimentStatusUpdate:
    """The body of ``update_experiment_status``; ``error`` and ``timestamp_ms`` only when
    given."""
    what = "update_experiment_status request"
    fields: dict[str, Any] = {"status": status}
    if error is not None:
        fields["error"] = fields_of(error, t.ExperimentStatusError, what)
    if timestamp_ms is not None:
        fields["timestamp_ms"] = timestamp_ms
    return checked(t.ExperimentStatusUpdate, what, fields)


def ingest_body(data: Sequence[t.MetricCreateInput | Mapping[str, Any]]) -> t.IngestCreate:
    """The body of ``ingest_metrics``: at most 1,000 metrics, each with a finite value and
    finite metadata, and the key ``step`` (None for the series' next step)."""
    what = "ingest_metrics request"
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Sequence):
        raise MetricsApiValidationError(
            f"invalid {what}: data must be a sequence of metrics, not {type(data).__name__}"
        )
    body = checked(
        t.IngestCreate, what, {"data": [fields_of(m, t.MetricCreateInput, what) for m in data]}
    )
    for index, metric in enumerate(body.data):
        if metric.client_event_id is None:
            raise MetricsApiValidationError(
                f"invalid {what}: Object missing required field `client_event_id` "
                f"- at `$.data[{index}]`"
            )
        if not math.isfinite(metric.value):
            raise MetricsApiValidationError(
                f"invalid {what}: value must be a finite number, not {metric.value} "
                f"- at `$.data[{index}].value`"
            )
        check_finite_metadata(metric.metadata, what, f"$.data[{index}].metadata")
    return body


def comparison_series(
    series: Sequence[t.ComparisonMetricSeries | Mapping[str, Any]],
) -> list[str]:
    """The ``series`` parameters of ``compare_metrics``: each series checked (a metadata value
    needs ``metadata_key``; at most one of ``metadata_value``/``metadata_value_json``, which
    must be JSON) and sent as compact JSON without its unset fields."""
    what = "compare_metrics series"
    if isinstance(series, (str, bytes, Mapping)) or not isinstance(series, Sequence):
        raise MetricsApiValidationError(
            f"invalid {what}: expected a sequence of series, not {type(series).__name__}"
        )
    fields = [fields_of(item, t.ComparisonMetricSeries, what) for item in series]
    checked_series = checked(list[t.ComparisonMetricSeries], what, fields)
    return [msgspec.json.encode(item).decode() for item in checked_series]


def annotation_create(annotation: str, metadata: Mapping[str, Any] | None) -> t.AnnotationCreate:
    """The body of ``create_annotation``."""
    what = "create_annotation request"
    fields = {"annotation": annotation, "metadata": dict(metadata or {})}
    body = checked(t.AnnotationCreate, what, fields)
    check_finite_metadata(body.metadata, what)
    return body


def ingestion_key_create(name: str, ttl_ms: int | None) -> t.IngestionKeyCreate:
    """The body of ``create_ingestion_key``: ``ttl_ms`` only when given (the server's default
    lifetime otherwise), ``0 < ttl_ms <= 7 days``."""
    fields: dict[str, Any] = {"name": name}
    if ttl_ms is not None:
        fields["ttl_ms"] = ttl_ms
    return checked(t.IngestionKeyCreate, "create_ingestion_key request", fields)
