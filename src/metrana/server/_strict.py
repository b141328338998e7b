"""Refusing what a route does not accept: unknown JSON body fields and query parameters.

The shared payload types in ``metrana.api._types`` ignore unknown fields, so that a client can
decode answers from a newer server. The server is stricter about what it is sent: a field or
query parameter it does not know is most likely a typo or a misunderstanding (``{"name": ...}``
sent to the PATCH route, which only takes ``description``), and ignoring it would answer 200
having done something else than was asked.

:func:`strict_type` derives, from a route's request type, a copy in which every msgspec struct
(nested ones too) forbids unknown fields, so a valid body costs a single decode. When that
decode fails, :func:`unknown_fields_message` walks the body once more to name every unknown field
and what is accepted in its place. Only msgspec structs are checked: msgspec always ignores
unknown keys of dataclasses, attrs classes and TypedDicts.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

import msgspec
import msgspec.inspect as mi

from ..api._routes import Route
from ._errors import ApiError

_PLACES_NAMED = 3  # places listed per kind of object; the rest are counted


def strict_type(tp: Any) -> Any:
    """``tp`` with every msgspec struct in it, nested ones included, replaced by a subclass that
    forbids unknown fields. Other types are returned as they are.

    The subclasses keep their base's name, fields, encoded names, defaults, tag and layout, so
    a body decodes to the same values, and ``isinstance`` against the base type still holds.
    """
    return _Strictifier().convert(tp)


class _Strictifier:
    def __init__(self) -> None:
        self._done: dict[Any, Any] = {}
        self._building: set[Any] = set()

    def convert(self, tp: Any) -> Any:
        origin = typing.get_origin(tp)
        if _is_struct(tp) or _is_struct(origin):
            return self._struct(tp, tp if origin is None else origin)
        if origin is None or origin is typing.Literal:
            return tp
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            inner = self.convert(args[0])
            annotated = (inner, *tp.__metadata__)
            return tp if inner is args[0] else typing.Annotated[annotated]
        converted = tuple(arg if arg is Ellipsis else self.convert(arg) for arg in args)
        if all(new is old for new, old in zip(converted, args, strict=True)):
            return tp
        if origin is typing.Union or origin is types.UnionType:
            return typing.Union[converted]  # noqa: UP007 -- built from a tuple
        return origin[converted]

    def _struct(self, tp: Any, base: type[msgspec.Struct]) -> Any:
        if tp in self._done:
            return self._done[tp]
        if tp in self._building:
            raise TypeError(f"strict decoding does not support the recursive struct {tp!r}")
        self._building.add(tp)
        config = base.__struct_config__
        fields: list[tuple[str, Any, Any]] = []
        for field in msgspec.structs.fields(tp):
            default: dict[str, Any] = {}
            if field.default is not msgspec.NODEFAULT:
                default["default"] = field.default
            if field.default_factory is not msgspec.NODEFAULT:
                default["default_factory"] = field.default_factory
            spec = msgspec.field(name=field.encode_name, **default)
            fields.append((field.name, self.convert(field.type), spec))
        tag_options: dict[str, Any] = {}
        if config.tag_field is not None:  # else a subclass would be tagged by its own name
            tag_options = {"tag_field": config.tag_field, "tag": config.tag}
        strict = msgspec.defstruct(
            base.__name__,
            fields,
            bases=(base,),
            module=__name__,
            kw_only=True,  # every field is redefined here, in its base's order
            forbid_unknown_fields=True,
            **tag_options,
        )
        self._building.discard(tp)
        self._done[tp] = strict
        return strict


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


# -- naming the unknown fields ---------------------------------------------------------------


class _Found:
    """The unknown fields met in objects of one struct type, and where."""

    def __init__(self, accepted: tuple[str, ...]) -> None:
        self.accepted = accepted
        self.names: dict[str, None] = {}  # an ordered set
        self.places: dict[str, None] = {}


def unknown_fields_message(route: Route, raw: bytes) -> str | None:
    """The error message naming every field of the JSON ``raw`` that ``route``'s request type
    does not define, at any depth, with the fields accepted there; None when there is none (or
    ``raw`` is not JSON)."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    found: dict[type, _Found] = {}
    _walk(mi.type_info(route.request), body, "", found)
    if not found:
        return None
    where = f"{route.method} {route.path}"
    parts: list[str] = []
    for kind in found.values():
        places = [place for place in kind.places if place]
        if not places:
            location = f"the body of {where}"
        else:
            location = ", ".join(places[:_PLACES_NAMED])
            if len(places) > _PLACES_NAMED:
                location += f" and {len(places) - _PLACES_NAMED} more"
            location += " of the body" if parts else f" of the body of {where}"
        parts.append(f"{_unknown('field', kind.names)} in {location}; accepted: "
                     + _listing(kind.accepted))  # fmt: skip
    return ". Also ".join(parts)


def refuse_unknown_query(route: Route, names: Iterable[str]) -> None:
    """Raise a 400 naming every query parameter in ``names`` that ``route`` does not take."""
    unknown = {name: None for name in names if name not in route.query_names}
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"{_unknown('query parameter', unknown)} in {route.method} {route.path}; "
            f"accepted: {_listing(route.query_names)}",
        )


def _unknown(what: str, names: Iterable[str]) -> str:
    quoted = [msgspec.json.encode(name).decode() for name in names]
    return f"unknown {what}{'s' if len(quoted) > 1 else ''} {', '.join(quoted)}"


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def _walk(info: mi.Type, value: Any, place: str, found: dict[type, _Found]) -> None:
    if isinstance(info, mi.Metadata):
        _walk(info.type, value, place, found)
    elif isinstance(info, mi.StructType):
        _walk_struct(info, value, place, found)
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        if isinstance(value, list):
            for index, item in enumerate(value):
                _walk(info.item_type, item, f"{place}[{index}]", found)
    elif isinstance(info, mi.TupleType):
        if isinstance(value, list):
            for index, (item_type, item) in enumerate(zip(info.item_types, value, strict=False)):
                _walk(item_type, item, f"{place}[{index}]", found)
    elif isinstance(info, mi.DictType):
        if isinstance(value, dict):
            for key, item in value.items():
                _walk(info.value_type, item, f"{place}[{msgspec.json.encode(key).decode()}]", found)
    elif isinstance(info, mi.UnionType):
        member = _union_member(info, value)
        if member is not None:
            _walk(member, value, place, found)


def _walk_struct(info: mi.StructType, value: Any, place: str, found: dict[type, _Found]) -> None:
    if info.array_like:
        if isinstance(value, list):
            for index, (field, item) in enumerate(zip(info.fields, value, strict=False)):
                _walk(field.type, item, f"{place}[{index}]", found)
        return
    if not isinstance(value, dict):
        return
    by_name = {field.encode_name: field for field in info.fields}
    unknown = [key for key in value if key not in by_name and key != info.tag_field]
    if unknown:
        kind = found.setdefault(info.cls, _Found(tuple(by_name)))
        kind.names.update(dict.fromkeys(unknown))
        kind.places[place.lstrip(".")] = None
    for name, field in by_name.items():
        if name in value:
            _walk(field.type, value[name], f"{place}.{name}", found)


def _union_member(info: mi.UnionType, value: Any) -> mi.Type | None:
    """The member of a union that ``value`` is decoded as, when it may hold fields."""
    if isinstance(value, dict):
        objects = [tp for tp in info.types if isinstance(tp, mi.StructType | mi.DictType)]
        structs = [tp for tp in objects if isinstance(tp, mi.StructType) and not tp.array_like]
        if len(structs) > 1:  # a tagged union
            tagged = [tp for tp in structs if tp.tag_field and value.get(tp.tag_field) == tp.tag]
            return tagged[0] if len(tagged) == 1 else None
        return structs[0] if structs else (objects[0] if objects else None)
    if isinstance(value, list):
        arrays = [
            tp
            for tp in info.types
            if isinstance(tp, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType
                          | mi.TupleType)
            or (isinstance(tp, mi.StructType) and tp.array_like)
        ]  # fmt: skip
        return arrays[0] if len(arrays) == 1 else None
    return None
