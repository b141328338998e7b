"""Units of the dispatcher's loop that the end-to-end tests cannot reach on demand."""

from __future__ import annotations

from typing import Any

import pytest

from metrana.dispatcher._inflight import submitted
from metrana.dispatcher._system import SystemSampler
from metrana.dispatcher.targets import RejectedBatch
from metrana.storage import SeriesColumns


def test_a_batch_the_target_cannot_take_is_rejected_not_raised() -> None:
    # (log() refuses what the wire cannot carry; this is the last line, so that one bad batch
    # never stops the loop, and its replacement, on the same records forever)
    def submit(batch: Any) -> Any:
        raise ValueError("Value out of range: 9223372036854775808")

    future = submitted(submit, {})
    error = future.exception(timeout=0)
    assert isinstance(error, RejectedBatch)
    assert str(error) == (
        "the batch could not be sent: ValueError('Value out of range: 9223372036854775808')"
    )


@pytest.mark.parametrize("later", [False, True])
def test_an_abandoned_batchs_system_samples_go_back_before_later_ones(later: bool) -> None:
    sampler = SystemSampler(5.0)
    key = ("system/cpu_percent", "ML_STEP", '{"process":"dispatcher"}')
    sampler.pending = {key: SeriesColumns([3], [30.0], [3_000])} if later else {}
    sampler.give_back({key: SeriesColumns([1, 2], [10.0, 20.0], [1_000, 2_000])})
    expected = ([1, 2, 3], [10.0, 20.0, 30.0], [1_000, 2_000, 3_000]) if later else (
        [1, 2], [10.0, 20.0], [1_000, 2_000]
    )  # fmt: skip
    restored = sampler.pending[key]
    assert (restored.steps, restored.values, restored.timestamps) == expected
