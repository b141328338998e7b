"""Records carried by the rings, shared by writers and the dispatcher.

Every record is five msgpack values, the first its kind:

* ``POINT, series_id, step, value, timestamp_ns``: the hot-path record. The writer sequence of
  a point is its position in the writer's ring: unique and monotonic per writer.
* ``DECLARE, series_id, metric_name, scale, labels``: interns a series once per writer.
* ``CLOSE, close_strategy, nil, nil, nil``: the writer closed; nothing follows it.
* ``FLOATS, series_id, first_step, bin, timestamp_ns``: a bulk record, consecutive points of one
  series from ``first_step``: the values as raw little-endian float64 bytes (8 per point), all
  with one timestamp. ``INTS`` is the same with int64 values.
* ``METRICS, [series_id, ...], step, [value, ...], timestamp_ns``: several series at one step
  (``log({"loss": ..., "acc": ...})``), one point each.

A bulk record counts as one record of the ring and as its number of points everywhere else.

A record is the msgpack encoding of the 5-tuple without its array header (its first byte): a
span of records is then a flat run of values, which the dispatcher decodes with one call into
one list and cuts into columns by slicing (``values[2::5]`` are the steps), with no object per
record. The declarations file keeps whole tuples.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "CLOSE",
    "DECLARE",
    "FLOATS",
    "INTS",
    "METRICS",
    "POINT",
    "VALUES_PER_RECORD",
    "close_record",
    "declare_record",
    "decoder",
    "encoder",
    "ring_record",
    "span_decoder",
]


POINT = 0
DECLARE = 1
CLOSE = 2
FLOATS = 3
INTS = 4
METRICS = 5
VALUES_PER_RECORD = 5

encoder = msgspec.msgpack.Encoder()
decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()
span_decoder: msgspec.msgpack.Decoder[list[Any]] = msgspec.msgpack.Decoder(list[Any])


def declare_record(series_id: int, name: str, scale: str, labels: dict[str, str]) -> bytes:
    """The whole tuple (as the declarations file keeps it); ``ring_record`` of it for a ring."""
    return encoder.encode((DECLARE, series_id, name, scale, labels))


def close_record(strategy: str) -> bytes:
    return ring_record(encoder.encode((CLOSE, strategy, None, None, None)))


def ring_record(encoded_tuple: bytes) -> bytes:
    """A record as a ring holds it: the encoded 5-tuple without its one-byte array header."""
    return encoded_tuple[1:]
