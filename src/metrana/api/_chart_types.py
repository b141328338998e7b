"""Payload types of Metrana's dashboard extensions to the REST API.

Two routes that the Syvain dialect does not have, in its conventions (the envelope, string
ids, ``*_ms`` times, strict query parameters):

* ``GET /experiments/{id}/charts``: an experiment's series downsampled for a chart of
  ``width`` pixels, over a step range (zooming in asks for the visible range again and gets
  its detail). The first and last point of the range are always kept; every NaN and infinity
  is kept as a *mark* (runs of consecutive ones as one mark), since a chart cannot draw it as a
  point and must not hide it.
* ``GET /experiment-summaries``: what the home table shows beside the experiments: each one's
  series and stored points (summed from its chunks' counts, no point read) and the last value
  of each series of the chosen metrics (one chunk read per series).
* ``POST /auth/login-tokens``: a one-time login URL for the dashboard, minted with an API key.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ._types import Id, Json, PointValue

MAX_CHART_WIDTH = 10_000  # points per series in one chart answer, at most
DEFAULT_CHART_WIDTH = 1_000
MAX_CHART_METRICS = 200  # series names in one request
MAX_SUMMARIES = 1000  # experiments in one summaries request
MAX_SUMMARY_METRICS = 20  # metrics whose last values one summaries request asks for
NonNegative = Annotated[int, Meta(ge=0)]


class ChartQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Which series, how many points each, over which steps (inclusive)."""

    metric_name: list[str] = []  # repeated; none: every metric of the experiment
    # at least 3: the downsampler keeps the first and last points and one per bucket between
    width: Annotated[int, Meta(ge=3, le=MAX_CHART_WIDTH)] | None = None
    from_step: NonNegative | None = None
    to_step: NonNegative | None = None


class ChartMark(msgspec.Struct, array_like=True):
    """A run of consecutive non-finite values: ``[first_step, last_step, "nan"|"inf"|"-inf"]``."""

    first_step: int
    last_step: int
    value: Literal["nan", "inf", "-inf"]


class ChartSeries(msgspec.Struct):
    """One series, downsampled: parallel ``steps``, ``values`` and ``times_ms`` (client time
    of each point), in step order, finite values only; non-finite ones are ``marks``."""

    metric_name: str
    scale: str
    metadata: Json
    total_points: int  # in the step range asked, before downsampling
    first_step: int | None  # of the whole series (for a zoom's bounds)
    last_step: int | None
    steps: list[int]
    values: list[float]
    times_ms: list[int]
    marks: list[ChartMark]


class ChartSeriesResponse(msgspec.Struct):
    series: list[ChartSeries]
    width: int  # the points per series that was aimed at


class SummaryQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Which experiments (repeated ``experiment_id``; none: every one of the organization) and
    the metrics whose last values to answer (repeated ``metric_name``)."""

    experiment_id: list[Id] = []
    metric_name: list[str] = []


class LastValue(msgspec.Struct):
    """The last stored point of one series: its step and value (a non-finite one as
    ``"nan"``, ``"inf"`` or ``"-inf"``)."""

    metric_name: str
    metadata: Json
    step: int
    value: PointValue


class ExperimentSummary(msgspec.Struct):
    experiment_id: str
    series: int
    points: int
    last_values: list[LastValue]  # of the series of the metrics asked, by name then metadata


class ExperimentSummariesResponse(msgspec.Struct):
    summaries: list[ExperimentSummary]


class LoginTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``ttl_ms``: how long the token may wait to be used (default and maximum: a day)."""

    ttl_ms: Annotated[int, Meta(ge=1000, le=24 * 3600 * 1000)] | None = None


class LoginToken(msgspec.Struct):
    """A dashboard login: open ``url`` once in a browser; it works once, until ``expires_at_ms``."""

    url: str
    expires_at_ms: int


class LoginTokenResponse(msgspec.Struct):
    login: LoginToken
