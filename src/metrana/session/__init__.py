"""One run on one host: the session directory, the dispatcher's election and spawn, the control
files (handshake, dispatcher.json, resume table, error channel, stats), process identity,
reaping and orphans, and the data of ``metrana status``."""

from __future__ import annotations

from . import _election, _error_channel, _process, _reaping, _session, _stats, _status
from ._election import *  # noqa: F403
from ._error_channel import *  # noqa: F403
from ._process import *  # noqa: F403
from ._reaping import *  # noqa: F403
from ._session import *  # noqa: F403
from ._stats import *  # noqa: F403
from ._status import *  # noqa: F403

__all__: list[str] = []
__all__ += _election.__all__
__all__ += _error_channel.__all__
__all__ += _process.__all__
__all__ += _reaping.__all__
__all__ += _session.__all__
__all__ += _stats.__all__
__all__ += _status.__all__
