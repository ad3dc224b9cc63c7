"""The bench's report: medians, their ratio, and the ratio within each repeat."""

from __future__ import annotations

import pytest

from bench.core import DISTRIBUTED, Outcome, Scenario
from bench.report import summary


async def _never(*_: object) -> dict[str, float]:
    raise AssertionError("not run")


def _outcome(runs: dict[str, list[float]]) -> Outcome:
    scenario = Scenario("fold", DISTRIBUTED, "ours", ("theirs",), _never)
    return Outcome(scenario, 100, runs=runs)


def test_ratios_per_repeat_pair_each_repeat_with_itself() -> None:
    # the machine slowed down in the third repeat: both sides fell, their ratio did not
    outcome = _outcome({"ours": [50.0, 60.0, 30.0], "theirs": [10.0, 12.0, 6.0]})
    assert outcome.ratios_per_repeat("theirs") == pytest.approx([5.0, 5.0, 5.0])
    assert outcome.ratio("theirs") == pytest.approx(50.0 / 10.0)
    line = summary([outcome]).splitlines()[2]
    assert line.endswith("5.00 5.00 5.00")


def test_no_pairs_when_a_repeat_lacks_one_side() -> None:
    outcome = _outcome({"ours": [50.0, 60.0], "theirs": [10.0]})
    assert outcome.ratios_per_repeat("theirs") == []
    assert outcome.ratios_per_repeat("absent") == []
