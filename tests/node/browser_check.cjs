#!/usr/bin/env node
// Render pages of the built docs site in headless chromium (Debian's, driven by playwright-core) and
// report what a reader would see. Serves nothing itself: tests/docs/test_browser.py serves site/.
//
// usage:  browser_check.cjs BASE_URL SCREENSHOT_DIR [--search=QUERY] NAME=PATH[@WIDTH]...
//         A page is rendered 1280 px wide, or WIDTH px wide (a phone: 390) when its PATH ends in @WIDTH.
// stdout: JSON {"pages": [{name, url, viewport: {width, height}, status, title, headings: {h1, h2},
//         tables: [{headers, rows, layout, broken_code}], screenshot}],
//         "search": {query, opened, meta, results: [{title, href}], screenshot} | null,
//         "page_errors": [...], "failed_requests": [...]}
//         layout, in CSS pixels of the viewport: {table: {left, right}, scroller: {left, right, client_width,
//         scroll_width} (the box that scrolls the table sideways: material's scroll wrapper, else the table),
//         content: {left, right} (the content column), columns: [{header, left, right, visible}], stacked,
//         labelled}.
//         A column is visible when its header cell lies inside the scroller's client area and the viewport,
//         so a reader sees it without scrolling sideways; stacked is true when the rows are laid out as
//         blocks (no visible header row); labelled when every cell's data-label is its column's header.
//         broken_code: each word (24 characters at most, between spaces and <wbr>s) of the code in the
//         table's cells that the browser laid out on more than one line (a token broken mid-word).
// Requests to other hosts are aborted, so the check runs offline (web fonts fall back to system fonts).
// Exits non-zero with a message on stderr when the browser cannot start or a page does not load.
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
const VIEWPORT = { width: 1280, height: 900 }; // wide enough for mkdocs-material's header search box
const PHONE_HEIGHT = 844;

function fail(message) {
  process.stderr.write(`browser_check: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const [base, outDir, ...rest] = argv;
  if (!base || !outDir) fail("usage: browser_check.cjs BASE_URL SCREENSHOT_DIR [--search=QUERY] NAME=PATH[@WIDTH]...");
  const pages = [];
  let search = null;
  for (const arg of rest) {
    if (arg.startsWith("--search=")) search = arg.slice("--search=".length);
    else if (arg.includes("=")) pages.push(pageArg(arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)));
    else fail(`not NAME=PATH[@WIDTH]: ${arg}`);
  }
  return { base: base.endsWith("/") ? base : `${base}/`, outDir, pages, search };
}

// PATH[@WIDTH]: the page and the width of its viewport.
function pageArg(name, spec) {
  const match = /^(.*)@([0-9]+)$/.exec(spec);
  const viewport = match ? { width: Number(match[2]), height: PHONE_HEIGHT } : VIEWPORT;
  return { name, path: match ? match[1] : spec, viewport };
}

// Headings and tables of the page's content area (not the navigation or the search overlay).
function readContent() {
  const root = document.querySelector(".md-content") || document.body;
  const text = (el) => el.textContent.replace(/\s+/g, " ").trim().replace(/\s*¶$/, "");
  const visible = (el) => el.checkVisibility() && el.getBoundingClientRect().height > 0;
  const headings = (tag) => [...root.querySelectorAll(tag)].filter(visible).map(text);
  const inner = root.querySelector(".md-content__inner") || root;
  const px = (value) => Math.round(value * 10) / 10;
  // Where a table sits, how far it scrolls sideways, and which of its header cells a reader sees unscrolled.
  const layout = (table) => {
    const wrapper = table.closest(".md-typeset__scrollwrap");
    const scroller = wrapper && root.contains(wrapper) ? wrapper : table;
    const box = scroller.getBoundingClientRect();
    const content = inner.getBoundingClientRect();
    const style = getComputedStyle(inner);
    const left = content.left + parseFloat(style.paddingLeft);
    const right = content.right - parseFloat(style.paddingRight);
    // What a reader sees unscrolled: the scroller's client area (less borders and scroll bar) within the viewport.
    const clientLeft = box.left + scroller.clientLeft;
    const limit = { left: Math.max(clientLeft, 0), right: Math.min(clientLeft + scroller.clientWidth, window.innerWidth) };
    const head = table.querySelector("thead tr");
    const stacked = !head || !visible(head);
    const columns = [...table.querySelectorAll("thead th")].map((th) => {
      const rect = th.getBoundingClientRect();
      return { header: text(th), left: px(rect.left), right: px(rect.right),
               visible: !stacked && rect.width > 0 && rect.left >= limit.left - 1 && rect.right <= limit.right + 1 };
    });
    const rect = table.getBoundingClientRect();
    const headers = [...table.querySelectorAll("thead th")].map(text);
    const labelled = [...table.querySelectorAll("tbody tr")].every((row) =>
      [...row.querySelectorAll("td")].every((td, index) => td.dataset.label === headers[index]));
    return { table: { left: px(rect.left), right: px(rect.right) },
             scroller: { left: px(box.left), right: px(box.right), client_width: scroller.clientWidth,
                         scroll_width: scroller.scrollWidth },
             content: { left: px(left), right: px(right) }, columns, stacked, labelled };
  };
  // The words (at most SHORT_WORD characters, between spaces and <wbr>s) of the code in a table's cells that the
  // browser broke across lines: a break inside a word rather than at a space or a <wbr>.
  const SHORT_WORD = 24;
  const brokenWords = (code) => {
    const broken = [];
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      for (const match of node.data.matchAll(/\S+/g)) {
        if (match[0].length > SHORT_WORD) continue;
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(match[0]);
      }
    }
    return broken;
  };
  const brokenCode = (table) => [...table.querySelectorAll("td code")].filter(visible).flatMap(brokenWords);
  const tables = [...root.querySelectorAll("table")].filter(visible).map((table) => ({
    headers: [...table.querySelectorAll("thead th")].map(text),
    rows: [...table.querySelectorAll("tbody tr")].map((row) => [...row.querySelectorAll("td")].map(text)),
    layout: layout(table),
    broken_code: brokenCode(table),
  }));
  return { headings: { h1: headings("h1"), h2: headings("h2") }, tables };
}

async function search(page, query, screenshot) {
  const input = page.locator("input.md-search__input");
  if ((await input.count()) === 0) return { query, opened: false, meta: null, results: [], screenshot: null };
  // Wide viewports show the input in the header; narrow ones a button (a label) that opens it.
  if (await input.isVisible()) await input.click({ timeout: 5000 });
  else await page.locator('label[for="__search"]:visible').first().click({ timeout: 5000 });
  await input.pressSequentially(query, { delay: 30 }); // material listens for key events, not "input"
  const items = page.locator(".md-search-result__item");
  await items.first().waitFor({ state: "visible", timeout: 15000 }).catch(() => {});
  const results = await items.evaluateAll((nodes) => nodes.map((node) => ({
    title: (node.querySelector("h1, h2") || node).textContent.replace(/\s+/g, " ").trim(),
    href: (node.querySelector("a") || {}).href || null,
  })));
  const meta = await page.locator(".md-search-result__meta").first().textContent().catch(() => null);
  await page.screenshot({ path: screenshot });
  return { query, opened: await input.isVisible(), meta: meta && meta.trim(), results, screenshot };
}

async function main() {
  const { base, outDir, pages, search: query } = parseArgs(process.argv.slice(2));
  fs.mkdirSync(outDir, { recursive: true });
  const origin = new URL(base).origin;
  const browser = await chromium.launch({ executablePath: EXECUTABLE, args: ["--no-sandbox"] })
    .catch((error) => fail(`cannot start ${EXECUTABLE}: ${error.message}`));
  const report = { pages: [], search: null, page_errors: [], failed_requests: [] };
  try {
    const context = await browser.newContext({ viewport: VIEWPORT });
    await context.route("**/*", (route) =>
      new URL(route.request().url()).origin === origin ? route.continue() : route.abort());
    for (const { name, path: pagePath, viewport } of pages) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      page.on("pageerror", (error) => report.page_errors.push(`${name}: ${error.message}`));
      page.on("response", (response) => {
        if (response.url().startsWith(origin) && response.status() >= 400) {
          report.failed_requests.push(`${name}: ${response.status()} ${response.url()}`);
        }
      });
      const url = new URL(pagePath, base).href;
      const response = await page.goto(url, { waitUntil: "load", timeout: 30000 });
      if (!response) fail(`no response for ${url}`);
      await page.waitForLoadState("networkidle", { timeout: 10000 }).catch(() => {});
      const screenshot = path.join(outDir, `${name}.png`);
      await page.screenshot({ path: screenshot, fullPage: true });
      report.pages.push({ name, url, viewport, status: response.status(), title: await page.title(),
                          ...(await page.evaluate(readContent)), screenshot });
      if (query !== null && report.search === null && viewport === VIEWPORT) {
        report.search = await search(page, query, path.join(outDir, "search.png"));
      }
      await page.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
}

main().catch((error) => fail(error.stack || String(error)));
