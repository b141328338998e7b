"""The ring's binary layout is specified once, in the docstring of ``metrana.ring._layout``:
every slot constant is in its tables with its number, and every slot they list exists."""

from __future__ import annotations

import re

from metrana.ring import _layout

ROW = re.compile(r"^\s{4}(\d+)\s+([MS]_[A-Z_]+)\s+(writer|reader)\s+\S", re.MULTILINE)


def _documented() -> dict[str, int]:
    assert _layout.__doc__ is not None
    return {name: int(slot) for slot, name, _ in ROW.findall(_layout.__doc__)}


def _constants() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(_layout).items()
        if re.fullmatch(r"[MS]_[A-Z_]+", name) and isinstance(value, int)
    }


def test_every_slot_constant_is_documented_with_its_number() -> None:
    documented = _documented()
    missing = {name: slot for name, slot in _constants().items() if documented.get(name) != slot}
    assert missing == {}


def test_every_documented_slot_is_a_constant() -> None:
    constants = _constants()
    extra = {name: slot for name, slot in _documented().items() if constants.get(name) != slot}
    assert extra == {}


def test_no_two_slots_of_a_file_share_a_number() -> None:
    for prefix in ("M_", "S_"):
        slots = [slot for name, slot in _constants().items() if name.startswith(prefix)]
        assert len(slots) == len(set(slots)), prefix


def test_the_checkpoint_table_fits_the_segment_header() -> None:
    last = _layout.S_CHECKPOINTS + _layout.CHECKPOINT_SLOTS
    assert last * 8 <= _layout.SEGMENT_HEADER
