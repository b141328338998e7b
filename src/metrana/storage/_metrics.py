"""Metric queries: an experiment's events as rows, the events of several series together, and
the catalog of an experiment's metric names and metadata values.

A series is (metric name, scale, metadata); its events' metadata is the series'. Rows come
from the columnar chunks of each series that matches, read only over the step range asked and,
when the order is by step, only as far as the limit. An event's id is derived from (series,
step), so a point has the same id whichever path stored it.

Functions that take an ``org_id`` only see that organization's experiments: an id from another
reads as not found.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterator
from typing import Any

import msgspec

from .._identity import I64_MAX
from ..api import _types as t
from . import _chunks, _experiments
from ._base import InvalidRequestError
from ._db import Connection, any_decoder, encode_json, parse_id

_ROW_SORT_KEYS = ("step", "client_timestamp", "server_timestamp")
_COMPARE_SORT_KEYS = (*_ROW_SORT_KEYS, "series")
MAX_COMPARED_SERIES = 100
DEFAULT_CATALOG_VALUES = 100  # values listed per metadata key without a limit


class _Experiment(msgspec.Struct):
    id: int
    org_id: int
    slug: str
    description: str
    metadata: str


class _Series(msgspec.Struct):
    id: int
    name: str
    scale: str
    labels: str  # the canonical JSON of its metadata
    metadata: dict[str, Any]


def _experiment(conn: Connection, org_id: int, experiment_id: str | int) -> _Experiment:
    number = parse_id("experiment", experiment_id) if isinstance(experiment_id, str) else (
        experiment_id)  # fmt: skip
    found = _experiments.row(conn, org_id, number)
    return _Experiment(found[0], found[1], found[3], found[4], found[5])


def _series(conn: Connection, experiment_id: int, metric_name: str | None) -> list[_Series]:
    sql = "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=?"
    args: list[Any] = [experiment_id]
    if metric_name is not None:
        sql += " AND metric_name=?"
        args.append(metric_name)
    return [
        _Series(r[0], r[1], r[2], r[3], any_decoder.decode(r[3]))
        for r in conn.execute(sql + " ORDER BY metric_name, scale, labels", args).fetchall()
    ]


def _metadata_filter(
    key: str | None, value: str | None, value_json: str | None
) -> tuple[str | None, str | None]:
    """The filter (key, canonical JSON of the wanted value or None) of the API's metadata
    parameters: ``metadata_value`` is compared as text, ``metadata_value_json`` as JSON."""
    if key is None:
        if value is not None or value_json is not None:
            raise InvalidRequestError("metadata_key is required when filtering by metadata value")
        return None, None
    if value is not None and value_json is not None:
        raise InvalidRequestError("give only one of metadata_value and metadata_value_json")
    if value_json is not None:
        try:
            return key, encode_json(msgspec.json.decode(value_json))
        except msgspec.DecodeError:
            raise InvalidRequestError(
                f"metadata_value_json must be valid JSON, got {value_json!r}"
            ) from None
    return key, None if value is None else encode_json(value)


def _matches(series: _Series, key: str | None, wanted: str | None, as_text: bool) -> bool:
    if key is None:
        return True
    if key not in series.metadata:
        return False
    if wanted is None:
        return True
    have = series.metadata[key]
    if as_text and not isinstance(have, str):
        return encode_json(encode_json(have)) == wanted  # a number or bool compared as its text
    return encode_json(have) == wanted


def _sort_keys(text: str | None, allowed: tuple[str, ...]) -> list[str]:
    if not text:
        return ["step"]
    keys = [key.strip() for key in text.split(",")]
    for key in keys:
        if key not in allowed:
            raise InvalidRequestError(f"cannot sort by {key!r}; accepted: {', '.join(allowed)}")
    if len(set(keys)) != len(keys):
        raise InvalidRequestError(f"sort_by names a key twice: {text!r}")
    return keys


def _limit(limit: int | None) -> int:
    if limit is None:
        return t.DEFAULT_ROW_LIMIT
    if limit > t.MAX_ROW_LIMIT:
        raise InvalidRequestError(f"limit must be at most {t.MAX_ROW_LIMIT}, got {limit}")
    return limit


def _step_range(f: t.RowFilters) -> tuple[int | None, int | None]:
    low, high = f.from_step, f.to_step
    if f.step is not None:
        low = f.step if low is None else max(low, f.step)
        high = f.step if high is None else min(high, f.step)
    return low, high


class _Source(msgspec.Struct):
    """One series' points read for a query, rows made of them only once they are picked."""

    exp: _Experiment
    series: _Series
    position: int  # its place in the request, for sorting
    token: str  # the event ids' prefix
    steps: list[int]
    values: list[Any]
    stamps: list[int]
    stored: list[int | None]
    keep: range | list[int]  # the indices that pass the time filter


def _step_keys(source: _Source, tie: int) -> Iterator[tuple[int, int, int, int]]:
    """The merge keys of a source's points, in their order: (step, position, tie, index)."""
    steps, position = source.steps, source.position
    return ((steps[i], position, tie, i) for i in source.keep)


class _Reader:
    """Rows of series under one set of filters, sorted and cut to the limit. The points are
    sorted first and rows are made for the ``limit`` picked only: ten series of 100,000
    points read for a 10,000-row answer make 10,000 rows, not 100,000."""

    def __init__(self, f: t.RowFilters, allowed: tuple[str, ...]) -> None:
        self.filters = f
        self.keys = _sort_keys(f.sort_by, allowed)
        self.descending = f.sort_direction == "desc"
        self.limit = _limit(f.limit)
        self.low, self.high = _step_range(f)
        self.timed = f.from_time is not None or f.to_time is not None
        # by step first, and nothing dropped after reading: each series' first `limit` suffice
        self.per_series = self.limit if self.keys[0] == "step" and not self.timed else None
        self.sources: list[_Source] = []

    def add(self, conn: Connection, exp: _Experiment, series: _Series, position: int) -> None:
        """Read one series' events (``position``: its place in the request, for sorting)."""
        if self.low is not None and self.high is not None and self.low > self.high:
            return
        steps, values, stamps, stored = _chunks.read_range(
            conn, exp.id, series.id, self.low, self.high, self.per_series, self.descending
        )
        f = self.filters
        keep: range | list[int] = range(len(steps))
        if self.timed:
            low = -1 if f.from_time is None else f.from_time
            high = I64_MAX if f.to_time is None else f.to_time
            keep = [i for i, stamp in enumerate(stamps) if low <= stamp // 1_000_000 <= high]
        token = hashlib.blake2b(
            f"{exp.id}\0{series.name}\0{series.scale}\0{series.labels}".encode(), digest_size=8
        ).hexdigest()
        self.sources.append(
            _Source(exp, series, position, token, steps, values, stamps, stored, keep)
        )

    def _picked(self) -> list[tuple[int, int]]:
        """(source, index) of the rows of the answer, in order."""
        sources = self.sources
        if self.keys == ["step"]:
            # each series' steps are in order already: merge them, as far as the limit; ties
            # by request position, then by series in the order read (as a stable sort)
            sign = -1 if self.descending else 1
            streams = [_step_keys(source, sign * n) for n, source in enumerate(sources)]
            merged = heapq.merge(*streams, reverse=self.descending)
            return [(sign * key[2], key[3]) for key in itertools.islice(merged, self.limit)]
        keyed = []
        for number, source in enumerate(sources):
            for i in source.keep:
                client_ms = source.stamps[i] // 1_000_000
                stored_ms = source.stored[i]
                by = {"step": source.steps[i], "client_timestamp": client_ms,
                      "server_timestamp": client_ms if stored_ms is None else stored_ms,
                      "series": source.position}  # fmt: skip
                keyed.append(((*[by[k] for k in self.keys], source.position, by["step"]),
                              number, i))  # fmt: skip
        keyed.sort(key=lambda entry: entry[0], reverse=self.descending)
        return [(number, i) for _, number, i in keyed[: self.limit]]

    def _row(self, source: _Source, i: int) -> t.MetricEventRow:
        exp, series, step = source.exp, source.series, source.steps[i]
        client_ms = source.stamps[i] // 1_000_000
        stored_ms = source.stored[i]
        description = metadata = None
        if self.filters.include_experiment_meta_as_of:
            description, metadata = exp.description, exp.metadata
        return t.MetricEventRow(
            event_id=f"{source.token}-{step}",
            org_id=str(exp.org_id),
            experiment_id=str(exp.id),
            experiment_slug=exp.slug,
            metric_name=series.name,
            metric_value=t.encode_value(source.values[i]),
            step=step,
            event_metadata_json=series.labels,
            client_timestamp_ms=client_ms,
            server_timestamp_ms=client_ms if stored_ms is None else stored_ms,
            scale=series.scale,
            experiment_description=description,
            experiment_metadata_json=metadata,
        )

    def answer(self) -> t.RowsResponse:
        """The rows, sorted and cut to the limit."""
        sources = self.sources
        return t.RowsResponse(rows=[self._row(sources[n], i) for n, i in self._picked()])


def list_metrics(
    conn: Connection, org_id: int, experiment_id: int, query: t.ListMetricsQuery
) -> t.RowsResponse:
    """An experiment's events that match ``query``, as rows."""
    exp = _experiment(conn, org_id, experiment_id)
    key, wanted = _metadata_filter(
        query.metadata_key, query.metadata_value, query.metadata_value_json
    )
    reader = _Reader(query, _ROW_SORT_KEYS)
    for series in _series(conn, exp.id, query.metric_name):
        if _matches(series, key, wanted, as_text=query.metadata_value is not None):
            reader.add(conn, exp, series, 0)
    return reader.answer()


def parse_series(texts: list[str]) -> list[t.ComparisonMetricSeries]:
    """The ``series`` parameters of ``compare_metrics``, each a JSON object."""
    if not texts:
        raise InvalidRequestError("compare_metrics needs at least one series parameter")
    if len(texts) > MAX_COMPARED_SERIES:
        raise InvalidRequestError(
            f"compare_metrics takes at most {MAX_COMPARED_SERIES} series, got {len(texts)}"
        )
    parsed = []
    for index, text in enumerate(texts):
        try:
            parsed.append(msgspec.json.decode(text, type=t.ComparisonMetricSeries))
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise InvalidRequestError(f"series[{index}] is not a valid series: {error}") from None
    return parsed


def compare_metrics(conn: Connection, org_id: int, query: t.CompareQuery) -> t.RowsResponse:
    """The events of several series (of one experiment or several), as rows."""
    reader = _Reader(query, _COMPARE_SORT_KEYS)
    for position, wanted in enumerate(parse_series(query.series)):
        exp = _experiment(conn, org_id, wanted.experiment_id)
        key, value = _metadata_filter(
            wanted.metadata_key, wanted.metadata_value, wanted.metadata_value_json
        )
        for series in _series(conn, exp.id, wanted.metric_name):
            if _matches(series, key, value, as_text=wanted.metadata_value is not None):
                reader.add(conn, exp, series, position)
    return reader.answer()


def catalog(
    conn: Connection, org_id: int, experiment_id: int, limit: int | None
) -> t.MetricCatalogResponse:
    """An experiment's metric names with the metadata keys their events carry, by name."""
    exp = _experiment(conn, org_id, experiment_id)
    keys: dict[str, set[str]] = {}
    for series in _series(conn, exp.id, None):
        keys.setdefault(series.name, set()).update(series.metadata)
    names = sorted(keys)[:limit]
    return t.MetricCatalogResponse(
        metrics=[t.MetricCatalogItem(name, sorted(keys[name])) for name in names]
    )


def catalog_values(
    conn: Connection,
    org_id: int,
    experiment_id: int,
    metric_name: str,
    keys: list[str],
    limit: int | None,
) -> t.MetricCatalogValuesResponse:
    """The distinct values each metadata key (``keys``, or every one) takes on a metric's
    events: at most ``limit`` values per key (100 by default), ``value_count`` of them in
    all."""
    exp = _experiment(conn, org_id, experiment_id)
    series = _series(conn, exp.id, metric_name)
    scanned = 0
    if series:
        marks = ",".join("?" * len(series))
        scanned = int(
            conn.execute(
                "SELECT IFNULL(SUM(count), 0) FROM chunks WHERE experiment_id=? "
                f"AND series_id IN ({marks})",
                [exp.id, *(s.id for s in series)],
            ).fetchone()[0]
        )
    wanted = keys or sorted({key for s in series for key in s.metadata})
    cap = DEFAULT_CATALOG_VALUES if limit is None else limit
    found = []
    for key in wanted:
        distinct = {
            encode_json(s.metadata[key]): s.metadata[key] for s in series if key in s.metadata
        }
        ordered = [distinct[text] for text in sorted(distinct)]
        found.append(t.MetricCatalogMetadataValue(key, ordered[:cap], len(ordered)))
    return t.MetricCatalogValuesResponse(
        metadata=t.MetricCatalogValues(metric_name, scanned, found)
    )
