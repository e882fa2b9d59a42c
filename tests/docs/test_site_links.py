"""Internal links and anchors of the built site, and the docs URLs that findings carry.

Every <a href>, <link href>, <img src> and <script src> of every HTML page that stays inside the site
(relative, root-relative, or under the site_url) must name a file of site/, and a #fragment must name
an element id (or a name) of the target page. All broken links are reported together. The `spec` URL of
every finding code must resolve the same way.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from specfmt.findings import spec_url
from specfmt.schemas import CODES

LINK_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "script": "src"}
ROOT = Path(__file__).resolve().parents[2]


class _Page(HTMLParser):
    """The anchors (ids and names) a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.anchors.add(values[key])
        attribute = LINK_ATTRIBUTES.get(tag)
        if attribute and values.get(attribute) is not None:
            self.links.append(values[attribute])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    page.close()
    return page


def _target(site: Path, path: str) -> Path | None:
    """The file a URL path names in the site: directories and trailing slashes mean index.html."""
    candidate = site / unquote(path).lstrip("/")
    if path.endswith("/") or path == "" or candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def _json_pointer_resolves(document: object, pointer: str) -> bool:
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return False
    return True


def _unresolved(site: Path, site_url: str, url: str, pages: dict[Path, _Page]) -> str | None:
    """Why an absolute URL under site_url names no file of site/, or no anchor or JSON Pointer of it; None
    when it resolves, and for URLs elsewhere (another host, mailto:, javascript:, data:)."""
    base, parts = urlsplit(site_url), urlsplit(url)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(base.path):
        return None
    target = _target(site, parts.path[len(base.path):])
    if target is None:
        return f"no file {parts.path} in the site"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html":
        if fragment not in (pages.get(target) or _parse(target)).anchors:
            return f"no id {fragment!r} in {target.relative_to(site).as_posix()}"
    elif fragment.startswith("/") and target.suffix == ".json":
        if not _json_pointer_resolves(json.loads(target.read_text(encoding="utf-8")), fragment):
            return f"pointer {fragment} not in {target.relative_to(site)}"
    return None


def broken_links(site: Path, site_url: str) -> list[str]:
    """'page: href (reason)' for every internal link or anchor of site/ that does not resolve."""
    pages = {path: _parse(path) for path in sorted(site.rglob("*.html"))}
    problems = []
    for path, page in pages.items():
        relative = path.relative_to(site).as_posix()
        for href in page.links:
            reason = _unresolved(site, site_url, urljoin(site_url + relative, href.strip()), pages)
            if reason:
                problems.append(f"{relative}: {href} ({reason})")
    return problems


def unresolved_urls(site: Path, site_url: str, urls: dict[str, str]) -> list[str]:
    """'name: url (reason)' for each URL, by name, that is not under site_url or does not resolve in site/."""
    problems = []
    for name, url in urls.items():
        reason = ("not under " + site_url if not url.startswith(site_url)
                  else _unresolved(site, site_url, url, {}))
        if reason:
            problems.append(f"{name}: {url} ({reason})")
    return problems


@pytest.mark.docs
def test_every_internal_link_and_anchor_of_the_site_resolves(site, site_url):
    problems = broken_links(site, site_url)
    assert not problems, f"{len(problems)} broken internal links:\n" + "\n".join(problems)


@pytest.mark.docs
def test_the_site_has_pages_that_link_to_each_other(site, site_url):
    """Guards the test above against passing on an empty or link-free site."""
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    assert len(pages) >= 3
    assert sum(len(page.links) for page in pages.values()) >= 10 * len(pages)


@pytest.mark.docs
def test_every_finding_code_names_its_rule_by_a_url_of_an_anchor_in_the_site(site, site_url):
    urls = {code: spec_url(entry["spec"]) for code, entry in CODES.items()}

    assert len(urls) >= 40
    assert unresolved_urls(site, site_url, urls) == []


def test_a_url_outside_the_site_or_of_a_missing_page_or_anchor_is_reported(tmp_path):
    _write(tmp_path / "spec" / "layout" / "index.html", '<a id="SFT-4"></a>')
    urls = {"ok": "https://specfmt.dev/spec/layout/#SFT-4", "anchor": "https://specfmt.dev/spec/layout/#SFT-9",
            "page": "https://specfmt.dev/spec/layout.md#SFT-4", "host": "https://example.org/spec/layout/#SFT-4"}

    problems = unresolved_urls(tmp_path, "https://specfmt.dev/", urls)

    assert problems == ["anchor: https://specfmt.dev/spec/layout/#SFT-9 (no id 'SFT-9' in spec/layout/index.html)",
                        "page: https://specfmt.dev/spec/layout.md#SFT-4 (no file /spec/layout.md in the site)",
                        "host: https://example.org/spec/layout/#SFT-4 (not under https://specfmt.dev/)"]


@pytest.mark.docs
def test_every_page_links_to_the_repository(site):
    repo_url = re.search(r"^repo_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)[1]
    pages = {path: _parse(path) for path in site.rglob("*.html")}

    assert repo_url.startswith("https://github.com/")
    assert [path.relative_to(site).as_posix() for path, page in pages.items() if repo_url not in page.links] == []


def _write(path: Path, html: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><body>{html}</body></html>", encoding="utf-8")


def test_the_link_checker_reports_missing_pages_anchors_and_pointers(tmp_path):
    _write(tmp_path / "index.html", """
        <h2 id="intro">Intro</h2>
        <a href="guide/">guide</a> <a href="guide/#usage">usage</a> <a href="#intro">self</a>
        <a href="https://specfmt.dev/guide/index.html#usage">absolute</a> <a href="/guide">root-relative</a>
        <a href="https://example.org/missing/">elsewhere</a> <a href="mailto:a@b.c">mail</a>
        <img src="img/logo.png"> <link rel="stylesheet" href="assets/style.css?v=1">
        <a href="schemas/a.json#/properties/x">pointer</a>
        <a href="missing/">missing page</a> <a href="guide/#nowhere">missing anchor</a>
        <a href="https://specfmt.dev/gone.html">missing absolute</a> <img src="img/none.png">
        <a href="schemas/a.json#/properties/y">missing pointer</a>
    """)
    _write(tmp_path / "guide" / "index.html", '<a name="usage"></a><a href="../#intro">back</a>')
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "logo.png").write_bytes(b"png")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "style.css").write_text("", encoding="utf-8")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "a.json").write_text('{"properties": {"x": {}}}', encoding="utf-8")

    problems = broken_links(tmp_path, "https://specfmt.dev/")

    assert [problem.split(" (")[0] for problem in problems] == [
        "index.html: missing/",
        "index.html: guide/#nowhere",
        "index.html: https://specfmt.dev/gone.html",
        "index.html: img/none.png",
        "index.html: schemas/a.json#/properties/y",
    ]
