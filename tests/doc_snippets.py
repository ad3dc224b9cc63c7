"""Run the code a document shows: a block marked `<!-- tested: NAME ... -->` in
docs/subscribers.md (or another document), its last line (the one that starts it for good)
left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"
SUBSCRIBERS = DOCS / "subscribers.md"
FENCE = "```python\n"


def defined_by(name: str, document: Path = SUBSCRIBERS, **given: Any) -> dict[str, Any]:
    """The names the snippet defines, with `given` (what the reader supplies) in its globals."""
    text = document.read_text()
    start = text.index(FENCE, text.index(f"<!-- tested: {name} ")) + len(FENCE)
    lines = text[start : text.index("```", start)].rstrip("\n").split("\n")
    namespace: dict[str, Any] = {"__name__": f"snippet_{name}", **given}
    exec(compile("\n".join(lines[:-1]), str(document), "exec"), namespace)
    return namespace
