"""HTML from trusted templates and escaped values: nothing reaches a page unescaped.

`html(template, **values)` formats a template written in this code base with values that
are escaped unless they are `Html` already (the output of another `html` call) — the
pattern of MarkupSafe, without the dependency.
"""

from __future__ import annotations

import html as std_html
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import quote


class Html(str):
    """Text that is safe to put into a page as it is."""

    __slots__ = ()


def escape(value: Any) -> Html:
    """`value` as HTML text (attribute-safe: quotes are escaped too); None is empty."""
    if isinstance(value, Html):
        return value
    return Html(std_html.escape("" if value is None else str(value), quote=True))


def html(template: str, **values: Any) -> Html:
    """`template` (trusted) with every value escaped; numbers stay numbers, so that a
    placeholder may format them (`{x:.1f}`): no number's text holds markup."""
    return Html(
        template.format(
            **{
                name: value if isinstance(value, int | float | Decimal) else escape(value)
                for name, value in values.items()
            }
        )
    )


def join(parts: Iterable[Html], separator: str = "") -> Html:
    return Html(separator.join(escape(part) for part in parts))


def path(*segments: str, query: str = "") -> Html:
    """A same-origin URL path from segments, each percent-encoded (never a scheme)."""
    url = "/" + "/".join(quote(segment, safe="") for segment in segments)
    return escape(url + (f"?{query}" if query else ""))
