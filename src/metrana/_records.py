"""Records carried by the rings, shared by writers and the dispatcher.

Each record is a msgpack array whose first element is its kind:

* ``[POINT, series_id, step, value, timestamp_ns]``: the hot-path record. The writer sequence
  of a point is its position in the writer's ring: unique and monotonic per writer.
* ``[DECLARE, series_id, metric_name, scale, labels]``: interns a series once per writer.
* ``[CLOSE, close_strategy]``: the writer closed; nothing follows it.
"""

from __future__ import annotations

from typing import Any

import msgspec

POINT = 0
DECLARE = 1
CLOSE = 2

encoder = msgspec.msgpack.Encoder()
decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()
# A span of a ring: records decoded as tuples (cheaper than lists, and zip() makes columns).
span_decoder: msgspec.msgpack.Decoder[list[tuple[Any, ...]]] = msgspec.msgpack.Decoder(
    list[tuple[Any, ...]]
)


def declare_record(series_id: int, name: str, scale: str, labels: dict[str, str]) -> bytes:
    return encoder.encode((DECLARE, series_id, name, scale, labels))


def close_record(strategy: str) -> bytes:
    return encoder.encode((CLOSE, strategy))
