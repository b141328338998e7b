"""Every process that logs: ``init``/``log``/``close``/``flush``/``stats``, the ``log()`` hot
path and its validation, the watchdog thread, fork and exit handling, and the RL helpers.

``__all__`` is this package's share of the public API (``metrana`` star-imports it)."""

from __future__ import annotations

from ..session._stats import SessionStats, Stats, WriterStats
from . import _rl, _run
from ._rl import *  # noqa: F403
from ._run import *  # noqa: F403

__all__ = ["SessionStats", "Stats", "WriterStats"]
__all__ += _run.__all__
__all__ += _rl.__all__
