"""Record boundaries inside a span of big records, so that a reader can stop a span of bulk
records after about a given number of bytes.

The writer's checkpoints fall every 1,024 records: for bulk records (an 8 KiB array each),
that is more than a ring holds, so a reader would take a whole ring at once. When a span's
records are big, :func:`cut_after` walks their msgpack values (five a record) to the last
record that ends within a byte budget. It only reads: a boundary it gets wrong (it cannot, for
records a writer wrote) makes the span fail to decode, and the reader then takes the span
whole, as it would without a cut.
"""

from __future__ import annotations

__all__ = ["cut_after"]

# msgpack type bytes: the size of the fixed part after the type byte, for fixed-size values
_FIXED = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCA: 4, 0xCB: 8,  # float32, float64
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int8..64
}  # fmt: skip
# bin and str with a length of 1, 2 or 4 bytes
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
# arrays and maps with a count of 2 or 4 bytes (a map counts its pairs)
_COUNTED = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _skip(data: memoryview, at: int, values: int) -> int:
    """The offset after ``values`` msgpack values from ``at``; -1 for a type records never
    hold (ext types)."""
    while values:
        values -= 1
        head = data[at]
        at += 1
        if head <= 0x7F or head >= 0xE0:  # fixints
            continue
        if head <= 0x8F:  # fixmap
            values += 2 * (head & 0x0F)
        elif head <= 0x9F:  # fixarray
            values += head & 0x0F
        elif head <= 0xBF:  # fixstr
            at += head & 0x1F
        elif head in _FIXED:
            at += _FIXED[head]
        elif head in _SIZED:
            width = _SIZED[head]
            at += width + int.from_bytes(data[at : at + width], "big")
        elif head in _COUNTED:
            width, per_item = _COUNTED[head]
            values += per_item * int.from_bytes(data[at : at + width], "big")
            at += width
        else:
            return -1
    return at


# The most records one cut walks: small records mixed among big ones cost a Python step each.
MAX_WALK = 2_048


def cut_after(
    data: memoryview, start: int, end: int, records: int, values_per_record: int, budget: int
) -> tuple[int, int] | None:
    """(offset, records) of the last record boundary within ``budget`` bytes of ``start`` in
    ``data[start:end]``, which holds ``records`` records (and within ``MAX_WALK`` records); at
    least one record. None when the first record already reaches ``end``, or a value is not
    one a record holds."""
    at = start
    taken = 0
    limit = start + budget
    while taken < min(records - 1, MAX_WALK):
        after = _skip(data, at, values_per_record)
        if after < 0 or after > end:
            return None
        if after > limit and taken:
            break
        at = after
        taken += 1
        if at >= limit:
            break
    if taken == 0 or at >= end:
        return None
    return at, taken
