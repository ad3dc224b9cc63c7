"""Run the code a document shows: a block marked `<!-- tested: NAME ... -->` in
docs/subscribers.md, its last line (the one that starts it for good) left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUBSCRIBERS = Path(__file__).resolve().parents[1] / "docs" / "subscribers.md"
FENCE = "```python\n"


def defined_by(name: str, **given: Any) -> dict[str, Any]:
    """The names the snippet defines, with `given` (what the reader supplies) in its globals."""
    text = SUBSCRIBERS.read_text()
    start = text.index(FENCE, text.index(f"<!-- tested: {name} ")) + len(FENCE)
    lines = text[start : text.index("```", start)].rstrip("\n").split("\n")
    namespace: dict[str, Any] = {"__name__": f"snippet_{name}", **given}
    exec(compile("\n".join(lines[:-1]), str(SUBSCRIBERS), "exec"), namespace)
    return namespace
