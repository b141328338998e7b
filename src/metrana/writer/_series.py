"""The writer's table of series: what a ``log()`` call names, ``(name, scale, labels)``,
interned once into a :class:`Series` (its id in the ring, whether it is declared there, its
next auto-incremented step), and the resume table those steps continue from.

:class:`SeriesTable` is the first layer of :class:`~metrana.writer._writer.Writer` (see that
module); ``Writer.__init__`` sets the state declared here."""

from __future__ import annotations

from typing import Any

from .._errors import MetranaInvalidMetricError, MetranaInvalidMetricTypeError
from .._identity import check_labels, check_metric_name, check_scale, labels_json
from ..ring import METRICS, encoder


class Series:
    """One series of this writer: its id in the ring, its identity, its next auto-step."""

    __slots__ = ("declared", "id", "labels", "logged_declaration", "name", "next_step", "scale")

    def __init__(self, series_id: int, name: str, scale: str, labels: dict[str, str]) -> None:
        self.id = series_id
        self.name = name
        self.scale = scale
        self.labels = labels
        self.next_step = 0
        self.declared = False
        self.logged_declaration = False


class SeriesRow:
    """Series logged together at one step (the metrics of a dict, a vector of environments):
    one METRICS record of their ids and values.

    ``prefix`` is the start of the row's records (the kind and the ids, encoded once);
    ``floats`` the type byte of every value of a msgpack array of ``len(series)`` floats, at
    every 9th byte from ``header``: :meth:`all_floats` checks an encoded list of values in C."""

    __slots__ = ("declared", "floats", "header", "ids", "prefix", "series")

    def __init__(self, series: list[Series]) -> None:
        self.series = series
        self.ids = [s.id for s in series]
        self.declared = False  # every series of the row is declared in the ring
        self.prefix = encoder.encode(METRICS) + encoder.encode(self.ids)
        count = len(series)
        self.header = 1 if count < 16 else 3 if count < 2**16 else 5  # msgpack array header
        self.floats = b"\xcb" * count  # msgpack's float64 type byte

    def all_floats(self, encoded: bytes) -> bool:
        """Whether ``encoded`` (a msgpack array of one value per series) holds only floats:
        each float64 takes 9 bytes, so the type bytes fall at fixed places."""
        header = self.header
        return len(encoded) == header + 9 * len(self.floats) and encoded[header::9] == self.floats


class SeriesTable:
    """Series interning and auto-incremented steps."""

    _plain: dict[str, Series]  # log()'s own table: a name logged without scale or labels
    _by_key: dict[Any, Series]  # (name, scale[, sorted labels]) as the caller passed them
    _canonical: dict[tuple[str, str, str], Series]  # (name, scale, labels JSON), checked
    _resume: dict[tuple[str, str, str], int]  # the next step of series not logged here yet
    _rows: dict[Any, SeriesRow]  # the names of a dict logged without scale or labels
    _vector_rows: dict[Any, SeriesRow]  # log_vector_env(): (name, scale, labels, label, count)
    _unraised: list[str]  # RaiseOnLog: messages the next log() raises
    _detached: bool

    def apply_resume(self, table: list[tuple[str, str, str, int]]) -> None:
        """Auto-incremented steps continue after the last step of each series in ``table``."""
        for name, scale, labels, last in table:
            key = (name, scale, labels)
            self._resume[key] = max(self._resume.get(key, 0), last + 1)

    def carry_steps(self, next_steps: dict[tuple[str, str, str], int]) -> None:
        """Continue auto-incremented steps from an earlier writer of this process."""
        for key, step in next_steps.items():
            if step > self._resume.get(key, 0):
                self._resume[key] = step

    def next_steps(self) -> dict[tuple[str, str, str], int]:
        """Auto-increment state, for a forked child to continue from."""
        steps = dict(self._resume)
        steps.update({key: s.next_step for key, s in self._canonical.items()})
        return steps

    def last_step(self, metric_name: str, scale: Any = None, labels: Any = None) -> int | None:
        """The last step of a series as this process knows it (logged here, or resumed)."""
        series = self._series(metric_name, scale, labels)
        return series.next_step - 1 if series.next_step > 0 else None

    def detach(self) -> None:
        """This writer takes no more points: closed, or this is a forked child's copy of its
        parent's. A log() function kept from it sends its calls to ``metrana.log``."""
        self._detached = True
        self._plain.clear()

    def _series(self, metric_name: str, scale: Any, labels: Any) -> Series:
        if labels is None:
            key: Any = (metric_name, scale)
        elif isinstance(labels, dict):
            try:
                key = (metric_name, scale, tuple(sorted(labels.items())))
            except TypeError:
                key = None
        else:
            key = None
        series = self._by_key.get(key) if key is not None else None
        if series is not None:
            if scale is None and labels is None:
                self._remember_plain(metric_name, series)  # again, after the table was emptied
            return series
        name = check_metric_name(metric_name)
        canonical = (name, check_scale(scale), labels_json(check_labels(labels)))
        series = self._canonical.get(canonical)
        if series is None:
            series = Series(len(self._canonical), name, canonical[1], check_labels(labels))
            series.next_step = self._resume.get(canonical, 0)
            self._canonical[canonical] = series
        if key is not None:
            self._by_key[key] = series
            if scale is None and labels is None:
                self._remember_plain(metric_name, series)
        return series

    def _metrics_row(self, names: tuple[Any, ...], scale: Any, labels: Any) -> SeriesRow:
        """The series of a dict's metric names (checked), remembered for the next dict with
        the same names when it has no scale or labels."""
        for name in names:
            check_metric_name(name)
        row = SeriesRow([self._series(name, scale, labels) for name in names])
        if scale is None and labels is None:
            self._rows[names] = row
        return row

    def _vector_row(self, name: Any, scale: Any, labels: Any, label: Any, count: int) -> SeriesRow:
        """The series of ``count`` environments: ``labels`` plus ``label`` = 0, 1, ..."""
        try:
            key: Any = (name, scale, label, count, labels and tuple(sorted(labels.items())))
            row = self._vector_rows.get(key)
        except (TypeError, AttributeError):  # unhashable: checked below, and not remembered
            key, row = None, None
        if row is not None:
            return row
        base = check_labels(labels)
        if type(label) is not str or not label:
            raise MetranaInvalidMetricTypeError(
                f"label must be a non-empty str (the label that tells environments apart), "
                f"got {type(label).__name__}: {label!r}"
            )
        if label in base:
            raise MetranaInvalidMetricError(
                f"labels already has {label!r}, the label that tells the environments apart; "
                "pass another label name"
            )
        row = SeriesRow([self._series(name, scale, {**base, label: str(i)}) for i in range(count)])
        if key is not None:
            self._vector_rows[key] = row
        return row

    def _remember_plain(self, metric_name: str, series: Series) -> None:
        """Put a name in log()'s table of plain series, unless log() must take _route now:
        errors to raise or a detached writer. (Checked after the store: poll_errors and detach
        set their flag before they empty the table, so one of the two always sees the other.)"""
        self._plain[metric_name] = series
        if self._unraised or self._detached:
            self._plain.pop(metric_name, None)
