"""Commands that are not servers run on uvloop where it is installed (as uvicorn runs the
services), and on asyncio's own loop where it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest

from shared import eventloop


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not built for Windows")
def test_runs_on_uvloop_where_installed() -> None:  # a dependency everywhere else
    assert eventloop.run(loop_module()).startswith("uvloop")


def test_runs_on_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails
    assert eventloop.run(loop_module()).startswith("asyncio")
