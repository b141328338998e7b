"""Where the dispatcher delivers: the :class:`Target` protocol and its three targets (the
embedded store, offline, HTTP). The HTTP target loads httpx only when it is chosen."""

from __future__ import annotations

import threading

from ..._config import OFFLINE, Config
from ._base import Batch, DeliveryFailure, RejectedBatch, Target
from ._embedded import EmbeddedTarget
from ._offline import OfflineTarget

__all__ = [
    "Batch",
    "DeliveryFailure",
    "EmbeddedTarget",
    "OfflineTarget",
    "RejectedBatch",
    "Target",
    "make_target",
]


def make_target(config: Config, stop: threading.Event | None = None) -> Target:
    """The target named by the configuration; ``stop`` ends the HTTP target's retry waits."""
    if config.is_embedded:
        return EmbeddedTarget(config.store_path)
    if config.ingestion_url == OFFLINE:
        return OfflineTarget()
    from ._http import HttpTarget

    return HttpTarget(config, stop=stop)
