"""What every integration shares: importing its framework with an error that says what to
install, the run opened on first use with the config known by then, and the conversion of a
framework's values into points and of its configs into JSON."""

from __future__ import annotations

import argparse
import enum
import importlib
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from .._config import orchestration_id
from .._errors import MetranaNotInitializedError
from .._identity import I64_MAX, I64_MIN, name_problem
from .._logging import logger
from ..writer import _run

__all__: list[str] = []  # internal: each integration module is public


def require(module: str, package: str, integration: str) -> Any:
    """Import ``module`` of the framework an integration plugs into, or raise an ImportError
    that says which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"metrana.integrations.{integration} needs the {package!r} package "
            f"(pip install {package}): importing {module} failed: {error}",
            name=module,
        ) from error


def scalar(value: Any) -> int | float | None:
    """The number a framework logged (a Python or NumPy number, a 0-d tensor or array), or None
    for what is not one number (a string, a bool, an image, a list). An int beyond 64 bits
    becomes a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        number = int(value)
        return number if I64_MIN <= number <= I64_MAX else float(number)
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        item = value.item()
        return None if isinstance(item, (bool, complex)) else scalar(item)
    return None


def jsonable(value: Any) -> Any:
    """``value`` as JSON that ``metrana.init(config=...)`` accepts: containers copied (keys as
    strings, tuples and sets as lists), numbers as numbers (NaN and infinities as their text),
    enums as their values, classes and functions as their names, anything else as its text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    number = scalar(value)
    if number is not None:
        return number if math.isfinite(number) else str(number)
    if callable(value) and hasattr(value, "__qualname__"):
        return str(value.__qualname__)
    return str(value)


def flatten(params: Any, separator: str = "/") -> dict[str, Any]:
    """Nested dicts and ``argparse.Namespace``s as one level, keys joined by ``separator``
    (``{"optimizer": {"lr": 0.1}}`` is ``{"optimizer/lr": 0.1}``), values made JSON."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, argparse.Namespace):
            value = vars(value)
        if isinstance(value, Mapping) and (value or not prefix):
            for key, item in value.items():
                walk(f"{prefix}{separator}{key}" if prefix else str(key), item)
        else:
            flat[prefix] = jsonable(value)

    walk("", params)
    return flat


class LazyRun:
    """The run an integration logs to, opened on first use: by ``metrana.init(...)`` with the
    names and ``init_kwargs`` given here and the config gathered until then, or, when this
    process already has a run (its own ``init()``, or one inherited through fork), that run.

    ``close_strategy`` defaults to ``CompleteAll`` (a framework's last metrics are not
    discarded). Creating one exports the job's orchestration id, so that the processes a
    framework starts later (Lightning's DDP ranks, spawned workers) join the same session."""

    def __init__(
        self,
        workspace_name: str | None = None,
        project_name: str | None = None,
        run_name: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        names = {"workspace_name": workspace_name, "project_name": project_name,
                 "run_name": run_name}  # fmt: skip
        self.missing = [name for name, value in names.items() if value is None]
        self.config: dict[str, Any] = dict(init_kwargs.pop("config", None) or {})
        init_kwargs.setdefault("close_strategy", "CompleteAll")
        self.init_kwargs = {**names, **init_kwargs}
        self.opened = False
        self.owned = False  # this object called init(), and closes the run
        self._warned = False
        orchestration_id()

    def add_config(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into the run's config. Once the run is open its metadata cannot
        change: a one-time warning names what is not stored."""
        if not self.opened:
            self.config.update(values)
            return
        stored = self.config if self.owned else {}
        self._not_stored([key for key, value in values.items() if stored.get(key, self) != value])

    def open(self) -> None:
        """Open the run if it is not open yet."""
        if self.opened:
            return
        try:
            _run.current_or_forked_writer()
        except MetranaNotInitializedError:
            if self.missing:
                raise MetranaNotInitializedError(
                    f"no Metrana run in this process to log to: call metrana.init() first, or "
                    f"give the integration {', '.join(self.missing)}"
                ) from None
            _run.init(**self.init_kwargs, config=self.config)
            self.owned = True
        else:
            self._not_stored(list(self.config))  # the process's own run: its init() had one
        self.opened = True

    def _not_stored(self, keys: list[str]) -> None:
        if keys and not self._warned:
            self._warned = True
            logger.warning(
                "metrana: config not stored (%s): the run was already open; an integration "
                "stores the config it has when it opens the run (before its first metric), "
                "or pass config= to metrana.init()",
                ", ".join(sorted(keys)[:5]) + (", ..." if len(keys) > 5 else ""),
            )

    def finish(self) -> None:
        """Close the run if this object opened it (waiting for its points, as
        ``close_strategy`` says); a later use opens it again."""
        if self.owned:
            writer = _run.current_writer()
            if writer is not None and not writer.closed:
                _run.close()
        self.opened = self.owned = False


class Metrics:
    """A framework's dicts of metrics, logged at its steps: one record per dict, numbers only
    (other values are skipped), and each metric at most once per step (a framework that
    repeats a metric at the same step, such as an epoch counter, would only add duplicates:
    the store keeps the first). A key's metric name is ``rename(key)`` (the key by default);
    a name Metrana refuses is skipped, with a warning the first time."""

    def __init__(
        self, scale: str | None = None, rename: Callable[[str], str] | None = None
    ) -> None:
        self.scale = scale
        self.rename = rename
        self._last_step: dict[str, int] = {}
        self._names: dict[str, str | None] = {}  # a key's metric name; None: not a valid one

    def log(
        self,
        values: Mapping[str, Any],
        step: int | None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Log the numbers of ``values`` at ``step`` (None: each series' next step)."""
        points: dict[str, int | float] = {}
        names = self._names
        for key, value in values.items():
            number = value if type(value) is float else scalar(value)
            if number is None:
                continue
            name = names[key] if key in names else self._name(key)
            if name is None:
                continue
            if step is not None:
                if self._last_step.get(name) == step:
                    continue
                self._last_step[name] = step
            points[name] = number
        if points:
            _run.log(points, scale=self.scale, step=step, labels=labels)

    def _name(self, key: str) -> str | None:
        name: str | None = self.rename(key) if self.rename is not None else str(key)
        problem = name_problem(name)
        if problem is not None:
            logger.warning("metrana: metric %r skipped: its name %s", name, problem)
            name = None
        self._names[key] = name
        return name
