"""The parsers of the settings table (``_config``): each takes a raw value (an ``init()``
argument of any type, or a variable's text) and returns the typed value, or raises
:class:`Invalid` (the caller says which setting, from where, and what is accepted)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ._enums import _NamedEnum, parse_enum

__all__: list[str] = []  # internal, as _config is


class Invalid(ValueError):
    """A value a parser does not accept (the caller says which setting and from where)."""


def enum_value(cls: type[_NamedEnum]) -> Callable[[Any], Any]:
    """A parser of the members of ``cls``, by any of the spellings ``parse_enum`` accepts."""

    def parse(raw: Any) -> Any:
        member = parse_enum(cls, raw)
        if member is None:
            raise Invalid
        return member

    return parse


def integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    """A parser of integers from ``minimum`` to ``maximum`` (no bool, no float)."""

    def parse(raw: Any) -> int:
        if isinstance(raw, (bool, float)):
            raise Invalid
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise Invalid from None
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid
        return value

    return parse


def seconds(raw: Any) -> float:
    """A finite number of seconds > 0."""
    if isinstance(raw, bool):
        raise Invalid
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Invalid from None
    if not 0 < value < float("inf"):
        raise Invalid
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def boolean(raw: Any) -> bool:
    """A bool, or its text: 1/0, true/false, yes/no, on/off (any case; empty is false)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise Invalid


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def byte_size(minimum: int) -> Callable[[Any], int]:
    """A parser of sizes of at least ``minimum`` bytes: an int, or a number with a unit (K, KiB
    and KB are 1024, 1024 and 1000 bytes; likewise M, G, T)."""

    def parse(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise Invalid
        match = _SIZE.fullmatch(str(raw))
        if match is None or match.group(2).lower() not in _BYTE_UNITS:
            raise Invalid
        value = int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])
        if value < minimum:
            raise Invalid
        return value

    return parse


def text(raw: Any) -> str:
    """A non-empty string without NUL, stripped."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise Invalid
    return raw.strip()


def user_path(raw: Any) -> Path:
    """A path (``~`` expanded)."""
    return Path(text(raw)).expanduser()


def http_url(raw: Any) -> str:
    """The origin of an http:// or https:// URL, ``scheme://host[:port]``: a server of the
    API lives at the root of its origin, so a path, query, fragment or user is refused."""
    from urllib.parse import urlsplit

    url = text(raw)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise Invalid from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise Invalid
    return f"{parts.scheme.lower()}://{parts.netloc}"


# A run's config is stored as JSON in the run's metadata, and sent in every handshake.
MAX_CONFIG_BYTES = 1024 * 1024


def json_object(raw: Any) -> dict[str, Any]:
    """A run's config: a dict with ``str`` keys whose values are JSON (``None``, ``bool``,
    ``int``, finite ``float``, ``str``, lists or tuples and dicts of those), at most
    ``MAX_CONFIG_BYTES`` as JSON. Returns a copy (tuples as lists). ``Invalid``'s message says
    where the first bad value is."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Invalid(f"a dict, not {type(raw).__name__}")
    copied: dict[str, Any] = _json_value(raw, "config")
    size = len(msgspec.json.encode(copied))
    if size > MAX_CONFIG_BYTES:
        raise Invalid(f"{size} bytes as JSON, over the limit of {MAX_CONFIG_BYTES}")
    return copied


def _json_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise Invalid(f"{where} is an int beyond 64 bits")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Invalid(f"{where} is {value!r}, which JSON cannot hold")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Invalid(f"{where} has the key {key!r}, not a str")
            out[key] = _json_value(item, f"{where}[{key!r}]")
        return out
    raise Invalid(f"{where} is a {type(value).__name__}, not a JSON value")
