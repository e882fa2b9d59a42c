"""The built site as a reader sees it: headless chromium renders the home page, the eagle3 and config.json
reference pages, the conformance guide and the pages of the install work (Install, Quickstart, the command line,
Writing an adapter, Training, ngram) 1280 px wide and again 390 px wide (a phone), and the search box finds the
eagle3 page. The reference tables fit: at 1280 px each Description column is in view without scrolling sideways,
and on a phone every column is in view or the rows are stacked. No short code token in a table cell is broken
mid-word, and the install facts a reader needs are on the Install page.

site/ is served from a local port by a stdlib HTTP server in a thread; tests/node/browser_check.cjs
drives Debian's chromium through playwright-core and reports headings, tables (with where they sit) and
search results as JSON. Full-page screenshots land in test-output/docs/.
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
PHONE = 390  # CSS pixels: a phone held upright
REFERENCE = {"eagle3": "reference/v1.0/algorithms/eagle3/", "config": "reference/v1.0/config/"}
# The pages issue 20 touched (install and docs, the converting and training guides, the eagle and config rules),
# each at 1280 px and on a phone.
TOUCHED = {"install": "install/", "quickstart": "quickstart/", "cli": "reference/cli/", "adapters":
           "conformance/adapters/", "training": "guides/training/", "ngram": "reference/v1.0/algorithms/ngram/",
           "converting": "guides/converting/", "eagle-spec": "spec/algorithms/eagle/", "config-spec": "spec/config/"}
PAGES = {"home": "", **REFERENCE, "conformance": "conformance/", **TOUCHED,
         **{f"{name}-phone": f"{path}@{PHONE}" for name, path in {**REFERENCE, **TOUCHED,
                                                                   "conformance": "conformance/"}.items()}}
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
                                                        ("conformance", "Running the suite", "Publish your results"),
                                                        ("install", "Install", "torch without CUDA"),
                                                        ("quickstart", "Quickstart", "Run the conformance suite"),
                                                        ("cli", "Command line", "specfmt convert"),
                                                        ("training", "Training a draft", "Three commands")])
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


def hidden_descriptions(page: dict) -> list[str]:
    """'page table N: reason' for each table with a Description column that a reader cannot see in full
    without scrolling sideways: the table scrolls, or the Description header ends past the content column."""
    problems = []
    for index, table in enumerate(page["tables"]):
        layout = table["layout"]
        description = next((c for c in layout["columns"] if c["header"] == "Description"), None)
        if description is None:
            continue
        where = f"{page['name']} table {index} ({' | '.join(table['headers'])})"
        scroller = layout["scroller"]
        if scroller["scroll_width"] > scroller["client_width"] + 1:
            problems.append(f"{where}: scrolls, {scroller['scroll_width']} px wide in {scroller['client_width']}")
        if not description["visible"] or description["right"] > layout["content"]["right"] + 1:
            problems.append(f"{where}: Description ends at {description['right']} px, the content column at "
                            f"{layout['content']['right']}")
    return problems


def unreadable_on_a_phone(page: dict) -> list[str]:
    """'page table N: reason' for each table that scrolls sideways, or shows only some of its columns, or is
    stacked without each value labelled by its column."""
    problems = []
    for index, table in enumerate(page["tables"]):
        layout, where = table["layout"], f"{page['name']} table {index} ({' | '.join(table['headers'])})"
        scroller = layout["scroller"]
        if scroller["scroll_width"] > scroller["client_width"] + 1:
            problems.append(f"{where}: scrolls, {scroller['scroll_width']} px wide in {scroller['client_width']}")
        if layout["stacked"] and not layout["labelled"]:
            problems.append(f"{where}: stacked, but its cells are not labelled with their column")
        hidden = [column["header"] for column in layout["columns"] if not column["visible"]]
        if not layout["stacked"] and hidden:
            problems.append(f"{where}: columns out of view: {hidden}")
    return problems


@pytest.mark.parametrize("name", REFERENCE)
def test_at_1280_px_every_reference_table_shows_its_description_without_scrolling(report, name):
    page = _page(report, name)
    assert page["viewport"]["width"] == 1280
    assert sum("Description" in table["headers"] for table in page["tables"]) >= 1, "no table with a Description"

    assert hidden_descriptions(page) == []


@pytest.mark.parametrize("name", REFERENCE)
def test_on_a_phone_every_reference_table_shows_every_column_or_stacks_its_rows(report, name):
    page = _page(report, f"{name}-phone")
    assert page["viewport"]["width"] == PHONE
    assert len(page["tables"]) == len(_page(report, name)["tables"])

    assert unreadable_on_a_phone(page) == []


def _layout(columns: list[tuple[str, float]], scroll_width: int, stacked: bool = False, labelled: bool = True):
    """A table's layout as browser_check.cjs reports it: columns as (header, right edge), 780 px visible."""
    edges = [0.0] + [right for _, right in columns]
    return {"headers": [header for header, _ in columns], "layout": {
        "scroller": {"client_width": 780, "scroll_width": scroll_width}, "content": {"left": 16, "right": 764},
        "columns": [{"header": header, "left": edges[i], "right": right, "visible": not stacked and right <= 780}
                    for i, (header, right) in enumerate(columns)],
        "stacked": stacked, "labelled": labelled}}


def test_a_description_behind_a_horizontal_scroll_is_reported():
    wide = _layout([("Path", 200), ("Type", 400), ("Description", 1076)], scroll_width=1108)
    fitting = _layout([("Path", 200), ("Type", 400), ("Description", 764)], scroll_width=780)
    other = _layout([("Symbol", 100), ("Meaning", 900)], scroll_width=932)

    problems = hidden_descriptions({"name": "eagle3", "tables": [fitting, wide, other]})

    assert problems == ["eagle3 table 1 (Path | Type | Description): scrolls, 1108 px wide in 780",
                        "eagle3 table 1 (Path | Type | Description): Description ends at 1076 px, "
                        "the content column at 764"]


def test_a_phone_table_with_columns_out_of_view_or_unlabelled_stacked_rows_is_reported():
    tables = [_layout([("Path", 200), ("Type", 900)], scroll_width=932),
              _layout([("Path", 0), ("Type", 0)], scroll_width=780, stacked=True),
              _layout([("Path", 0), ("Type", 0)], scroll_width=780, stacked=True, labelled=False)]

    problems = unreadable_on_a_phone({"name": "config-phone", "tables": tables})

    assert problems == ["config-phone table 0 (Path | Type): scrolls, 932 px wide in 780",
                        "config-phone table 0 (Path | Type): columns out of view: ['Type']",
                        "config-phone table 2 (Path | Type): stacked, but its cells are not labelled with their column"]


@pytest.mark.parametrize("name", [name for name in PAGES if name != "home"])
def test_no_short_code_token_in_a_table_cell_is_broken_mid_word(report, name):
    broken = [code for table in _page(report, name)["tables"] for code in table["broken_code"]]
    assert broken == []


def test_the_install_page_shows_every_extra_and_the_cpu_build_of_torch(report):
    rows = [row for table in _page(report, "install")["tables"] for row in table["rows"]]
    installs = {row[-1] for row in rows}
    assert {"pip install specfmt", "pip install 'specfmt[runtime]'", "pip install 'specfmt[text]'",
            "pip install 'specfmt[plots]'", "pip install 'specfmt[train]'"} <= installs
    assert "specfmt convert" in {row[0] for row in rows}


@pytest.mark.parametrize("name", TOUCHED)
def test_a_touched_page_fits_a_phone(report, name):
    assert unreadable_on_a_phone(_page(report, f"{name}-phone")) == []
