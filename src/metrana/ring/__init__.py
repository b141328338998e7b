"""The writer<->dispatcher contract in shared memory: rings of msgpack records in mmap'd
files. The complete binary format is the docstring of :mod:`metrana.ring._layout`."""

from __future__ import annotations

from . import _declarations, _layout, _mapping, _reader, _records, _writer
from ._declarations import *  # noqa: F403
from ._layout import *  # noqa: F403
from ._mapping import *  # noqa: F403
from ._reader import *  # noqa: F403
from ._records import *  # noqa: F403
from ._writer import *  # noqa: F403

__all__: list[str] = []
__all__ += _declarations.__all__
__all__ += _layout.__all__
__all__ += _mapping.__all__
__all__ += _reader.__all__
__all__ += _records.__all__
__all__ += _writer.__all__
