"""Where the dispatcher delivers: the :class:`Target` protocol and its three targets (the
embedded store, offline, HTTP). The HTTP target loads httpx only when it is chosen."""

from __future__ import annotations

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


def make_target(config: Config) -> Target:
    """The target named by the configuration."""
    if config.is_embedded:
        return EmbeddedTarget(config.store_path)
    if config.ingestion_url == OFFLINE:
        return OfflineTarget()
    from ._http import HttpTarget

    return HttpTarget(config)
