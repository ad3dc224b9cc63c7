"""The collector settings the fold and the audit use, each checked in a process of its own
(they are process-wide): `settle` freezes what is loaded and collects young objects less
often; `paused_collector` disables collection only while bulk data is built."""

from __future__ import annotations

import subprocess
import sys

SETTLE = """
import gc
from shared import heap
before = gc.get_threshold()
heap.settle()
print(before[0], gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""
PAUSED = """
import gc
from shared import heap
with heap.paused_collector():
    inside = gc.isenabled()
after = gc.isenabled()
with heap.paused_collector(kept_till_exit=True):
    frozen_inside = gc.get_freeze_count()
print(inside, after, gc.get_freeze_count() > frozen_inside)
"""


FREEZE = """
import gc
from shared import heap
before = gc.get_threshold()
heap.freeze_start_up()
print(before == gc.get_threshold(), gc.get_freeze_count() > 0)
"""


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_settle_freezes_start_up_and_raises_the_young_threshold() -> None:
    default, settled, frozen = _run(SETTLE)
    assert int(default) < 50_000 and int(settled) == 50_000 and frozen == "True"


def test_paused_collector_pauses_only_inside_and_may_freeze_what_it_built() -> None:
    assert _run(PAUSED) == ["False", "True", "True"]


def test_only_the_fold_settles_the_collector() -> None:
    """A service process other than the ledger keeps CPython's defaults."""
    code = (
        "import gc\nfrom services.ingest.bootstrap import bootstrap\n"
        "from tests.system import make_settings\nbootstrap(make_settings())\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count())"
    )
    threshold, frozen = _run(code)
    assert int(threshold) < 50_000 and frozen == "0"


def test_freezing_start_up_keeps_the_thresholds() -> None:
    """Ingest's setting: start-up's objects leave the collector's passes, nothing else."""
    assert _run(FREEZE) == ["True", "True"]
