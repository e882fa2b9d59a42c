"""The links of a Markdown page that only work inside the repository: a PyPI page (a distribution's readme) has
none of them."""

from __future__ import annotations

import re

LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)|(?:href|src)=[\"']([^\"']+)[\"']|^\[[^\]]+\]:\s*(\S+)", re.M)


def relative_links(markdown: str) -> list[str]:
    """Every link target that is neither absolute (scheme://, mailto:) nor an anchor on the same page."""
    targets = [next(g for g in m.groups() if g) for m in LINK.finditer(markdown)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
