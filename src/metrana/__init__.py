"""Metrana: multiprocess-safe metrics tracking for ML and RL training.

Three calls from any process of a training job::

    import metrana
    metrana.init(workspace_name="me", project_name="mnist", run_name="baseline")
    metrana.log("loss", 0.25, step=10)
    metrana.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import _enums, _errors, writer
from ._enums import *  # noqa: F403
from ._errors import *  # noqa: F403
from .writer import *  # noqa: F403

__version__ = "0.1.0"

if _TYPE_CHECKING:
    from .api import AsyncClient as AsyncClient
    from .api import Client as Client
    from .api import ComparisonMetricSeries as ComparisonMetricSeries

# The REST client pulls in httpx; it is loaded on first use so that `import metrana` stays
# cheap in every training process.
_REST_CLIENT_NAMES = ("AsyncClient", "Client", "ComparisonMetricSeries")


def __getattr__(name: str) -> _Any:
    if name in _REST_CLIENT_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'metrana' has no attribute {name!r}")


__all__ = ["__version__"]
__all__ += _enums.__all__
__all__ += _errors.__all__
__all__ += writer.__all__
__all__ += _REST_CLIENT_NAMES
