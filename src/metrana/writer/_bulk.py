"""Bulk values as one column of raw bytes: NumPy arrays, PyTorch tensors, JAX arrays, and lists
or tuples of numbers, checked as a whole, without a Python object per value.

:func:`column_of` answers ``(kind, data, count)``: the ring record kind (``FLOATS`` or
``INTS``), the values as little-endian float64 or int64 bytes, and their number. NumPy is
imported only when the value is an array or a tensor (which imports it already); torch and
JAX never are: a tensor is recognised by its type's module.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

from .._errors import MetranaInvalidMetricError, MetranaInvalidMetricTypeError
from .._identity import I64_MAX, check_value, numbers_of
from ..ring import FLOATS, INTS

__all__ = ["Column", "checked_number", "column_of", "host_array", "values_of"]

# (record kind, little-endian bytes of the values, number of values)
Column = tuple[int, bytes | memoryview, int]

_BIG_ENDIAN = sys.byteorder == "big"
# The NumPy dtype kinds accepted, and what they are stored as.
_FLOAT_KIND, _SIGNED_KIND, _UNSIGNED_KIND = "f", "i", "u"


def column_of(values: Any) -> Column | None:
    """The column of ``values`` (a list, tuple, array or tensor); None for a list or tuple
    that is not all floats or all ints (the caller then checks and logs it value by value).

    Raises a clear error for an array of another dtype, or not 1-D, and for ints that do not
    fit a signed 64-bit integer."""
    if type(values) is list or type(values) is tuple:
        return _sequence_column(values)
    return _array_column(host_array(values))


def checked_number(value: Any) -> int | float:
    """One value checked as ``log()`` checks it; a 0-d array or tensor (``loss`` after
    ``backward()``) counts as the number it holds, read with ``item()`` (one host copy)."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()
    return check_value(value)


def values_of(column: Column) -> list[Any]:
    """The values of a column as a list of Python numbers (converted in C)."""
    kind, data, _ = column
    return numbers_of("d" if kind == FLOATS else "q", data)


def host_array(value: Any) -> Any:
    """``value`` as a NumPy array in host memory: a CPU tensor without a copy, an accelerator
    tensor or a JAX array copied to the host once."""
    module = type(value).__module__
    if module.startswith("torch"):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()  # one copy of the whole tensor, never element by element
        if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy()
    if module.startswith(("jax", "jaxlib")):
        import numpy

        return numpy.asarray(value)  # one device-to-host copy
    return value


def _sequence_column(values: list[Any] | tuple[Any, ...]) -> Column | None:
    types = set(map(type, values))
    if types == {float}:
        column = array("d", values)
        kind = FLOATS
    elif types == {int}:
        try:
            column = array("q", values)
        except OverflowError:
            for value in values:
                check_value(value)  # raises, naming the value
            raise
        kind = INTS
    else:
        return None  # mixed, bools, NumPy scalars...: checked one by one
    if _BIG_ENDIAN:
        column.byteswap()
    return kind, memoryview(column).cast("B"), len(column)


def _array_column(values: Any) -> Column:
    dtype = getattr(values, "dtype", None)
    shape = getattr(values, "shape", None)
    if dtype is None or shape is None:
        raise MetranaInvalidMetricTypeError(
            f"value must be an int, a float, or a sequence or 1-D array of them, got "
            f"{type(values).__name__}"
        )
    if len(shape) != 1:
        raise MetranaInvalidMetricTypeError(
            f"an array value must be 1-D (consecutive steps of one series), got shape "
            f"{tuple(shape)}; to log one step of many series, use metrana.log_vector_env()"
        )
    kind = dtype.kind
    if kind == _FLOAT_KIND and dtype.itemsize <= 8:
        return FLOATS, _little_endian_bytes(values, "<f8"), int(shape[0])
    if kind == _SIGNED_KIND or (kind == _UNSIGNED_KIND and dtype.itemsize < 8):
        return INTS, _little_endian_bytes(values, "<i8"), int(shape[0])
    if kind == _UNSIGNED_KIND:
        if shape[0] and int(values.max()) > I64_MAX:
            raise MetranaInvalidMetricError(
                f"value {int(values.max())} of the uint64 array does not fit a 64-bit signed "
                "integer; log the array as float64 (array.astype('float64')) if an "
                "approximation will do"
            )
        return INTS, _little_endian_bytes(values, "<i8"), int(shape[0])
    why = "bools are not metric values" if kind == "b" else "accepted: float16/32/64 and ints"
    raise MetranaInvalidMetricTypeError(
        f"an array of dtype {dtype} cannot be logged ({why}); convert it, e.g. "
        "array.astype('float64')"
    )


def _little_endian_bytes(values: Any, dtype: str) -> memoryview:
    """The array's buffer in ``dtype``, contiguous: the array's own memory when it is already
    so (no copy), else one conversion in NumPy."""
    flags = getattr(values, "flags", None)  # a pandas Series has flags of another kind
    if values.dtype.str != dtype or not getattr(flags, "c_contiguous", False):
        import numpy

        values = numpy.ascontiguousarray(values, dtype=dtype)
    return memoryview(values).cast("B")
