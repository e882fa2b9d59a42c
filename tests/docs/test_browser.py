"""The built site as a reader sees it: headless chromium renders the home page, the eagle3 reference page
and the conformance guide, and the search box finds the eagle3 page.

site/ is served from a local port by a stdlib HTTP server in a thread; tests/node/browser_check.cjs
drives Debian's chromium through playwright-core and reports headings, tables and search results as
JSON. Full-page screenshots land in test-output/docs/.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "node" / "browser_check.cjs"
SCREENSHOTS = ROOT / "test-output" / "docs"
CHROMIUM = Path("/usr/bin/chromium")
NODE = shutil.which("node")
PAGES = {"home": "", "eagle3": "reference/v1.0/algorithms/eagle3/", "conformance": "conformance/"}
SEARCH = "eagle3"
LAYOUT = json.loads((ROOT / "schemas" / "v1.0" / "layouts" / "eagle3.json").read_text(encoding="utf-8"))

pytestmark = [
    pytest.mark.docs,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: run `make docs-test`"),
    pytest.mark.skipif(not (ROOT / "node_modules" / "playwright-core" / "package.json").is_file(),
                       reason="node_modules/playwright-core is absent: run `make docs-test`"),
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def report(site) -> dict:
    """browser_check.cjs's JSON report over the site served on a free localhost port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        run = subprocess.run([NODE, str(SCRIPT), base, str(SCREENSHOTS), f"--search={SEARCH}",
                              *(f"{name}={path}" for name, path in PAGES.items())],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    if run.returncode != 0:
        pytest.fail(f"{SCRIPT.name} exited {run.returncode}:\n{run.stderr}")
    return json.loads(run.stdout)


def _page(report: dict, name: str) -> dict:
    return next(page for page in report["pages"] if page["name"] == name)


def test_every_page_loads_without_script_errors_or_missing_assets(report):
    assert [page["status"] for page in report["pages"]] == [200] * len(PAGES)
    assert report["page_errors"] == []
    assert report["failed_requests"] == []


@pytest.mark.parametrize(("name", "title", "section"), [("home", "specfmt", "Where to go next"),
                                                        ("eagle3", "eagle3", "Tensors"),
                                                        ("conformance", "Running the suite", "Publish your results")])
def test_each_page_renders_its_title_and_section_headings(report, name, title, section):
    headings = _page(report, name)["headings"]

    assert len(headings["h1"]) == 1 and headings["h1"][0].startswith(title), headings
    assert section in headings["h2"] and all(headings["h2"]), headings


def _name_column(headers: list[str]) -> int | None:
    """The tensor-name column of a tensor table (columns tensor or name, dtype, shape), else None."""
    lowered = [header.lower() for header in headers]
    if not {"dtype", "shape"} <= set(lowered):
        return None
    return next((lowered.index(name) for name in ("tensor", "name") if name in lowered), None)


def test_the_eagle3_page_renders_the_tensor_table_with_every_named_layout_tensor(report):
    tables = [(table, _name_column(table["headers"])) for table in _page(report, "eagle3")["tables"]]
    names = {row[column] for table, column in tables if column is not None for row in table["rows"]}
    assert names, "no rendered table with tensor name, dtype and shape columns"

    assert "fc.weight" in names
    assert {tensor["name"] for tensor in LAYOUT["tensors"] if "name" in tensor} <= names


def test_the_search_box_finds_the_eagle3_page(report):
    search = report["search"]

    assert search is not None and search["opened"], "no mkdocs-material search box on the home page"
    assert any(PAGES["eagle3"] in (result["href"] or "") for result in search["results"]), search


def test_a_full_page_screenshot_is_saved_for_every_page(report):
    for page in report["pages"]:
        screenshot = Path(page["screenshot"])
        assert screenshot.parent == SCREENSHOTS and screenshot.stat().st_size > 10_000
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
