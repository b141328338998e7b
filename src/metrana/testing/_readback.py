"""Reading a run back through the REST API, whole: every event of every series, paged past
the API's row limit (``list_metrics`` answers at most 100,000 rows a call)."""

from __future__ import annotations

from typing import Any, Protocol

from ..api._types import MAX_ROW_LIMIT, MetricEventRow, RowsResponse, decode_value

SeriesPoints = dict[tuple[str, str], list[tuple[int, float | int]]]


class _Lister(Protocol):
    def list_metrics(self, experiment_id: str, **filters: Any) -> RowsResponse: ...


def read_rows(
    client: _Lister, experiment_id: str, page: int = MAX_ROW_LIMIT, **filters: Any
) -> list[MetricEventRow]:
    """Every row of an experiment that ``filters`` (``list_metrics`` parameters, not
    ``from_step``, ``sort_by`` or ``limit``) select, by step, however many there are."""
    rows: list[MetricEventRow] = []
    from_step = 0
    while True:
        answer = client.list_metrics(
            experiment_id, from_step=from_step, sort_by=["step"], limit=page, **filters
        )
        if len(answer.rows) < page:
            rows += answer.rows
            return rows
        last = answer.rows[-1].step
        assert last is not None
        complete = [row for row in answer.rows if row.step != last]
        if not complete:
            raise ValueError(f"more than {page} events at step {last}: read with a larger page")
        rows += complete
        from_step = int(last)


def stored_points(client: _Lister, experiment_id: str, **filters: Any) -> SeriesPoints:
    """An experiment's points by series, ``(metric name, metadata JSON) -> [(step, value)]``
    in step order, read through the REST API."""
    series: SeriesPoints = {}
    for row in read_rows(client, experiment_id, **filters):
        assert row.step is not None
        value = decode_value(row.metric_value)
        key = (row.metric_name, row.event_metadata_json)
        series.setdefault(key, []).append((int(row.step), value))
    return series
