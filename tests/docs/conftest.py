"""Shared fixtures of the docs tests: the built site (make docs) and its public address.

Every test here but test_config_examples.py reads the built site and is marked `docs`, so the
default run leaves them out; `make docs-test` builds the site and runs them. SPECFMT_SITE points
them at a site built elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site directory; skips the test when there is none."""
    path = Path(os.environ.get("SPECFMT_SITE", ROOT / "site")).resolve()
    if not (path / "index.html").is_file():
        pytest.skip(f"{path} holds no built site (no index.html): run `make docs-test`")
    return path


@pytest.fixture(scope="session")
def site_url() -> str:
    """The site's public address (site_url in mkdocs.yml); links under it are internal."""
    return "https://specfmt.dev/"
