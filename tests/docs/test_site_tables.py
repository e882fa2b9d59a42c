"""The built site has no table without a filled row: a header over an empty grid (the layout of a draft with no
tensors, a command with no arguments) is a sentence instead."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.docs


def test_no_table_of_the_built_site_is_empty(site):
    empty = []
    for page in sorted(site.rglob("*.html")):
        for table in re.findall(r"<table.*?</table>", page.read_text(encoding="utf-8"), re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)
            if not any(cell.strip() for cell in cells):
                empty.append(str(page.relative_to(site)))
    assert empty == []
