// Content tables, on every page load (material's instant navigation included, when enabled):
// - each cell gets its column's header as data-label, so that extra.css can size the narrow columns of
//   the field and tensor tables and, on a phone, stack a wide table's rows and still name every value;
// - code and links in a cell may break after a `.` or `_` that ends a part of two or more letters or digits
//   (a <wbr>), so `layers.0.hidden_norm.weight` wraps between its parts rather than inside one, and `H_t` never;
// - code with a word (between spaces and <wbr>s) longer than LONG_WORD characters is marked `long`: only it may
//   break inside a word, where no column could hold the word whole.
(function () {
  "use strict";

  const AFTER_DOT_OR_UNDERSCORE = /(?<=\w\w[._])(?=[\w{*])/;
  const LONG_WORD = 24; // characters: code with a longer unbroken word may break inside it (extra.css, .long)

  function breakable(code) {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const node of nodes) {
      const parts = node.data.split(AFTER_DOT_OR_UNDERSCORE);
      if (parts.length < 2) continue;
      const fragment = document.createDocumentFragment();
      parts.forEach((part, index) => {
        if (index) fragment.append(document.createElement("wbr"));
        fragment.append(part);
      });
      node.replaceWith(fragment);
    }
  }

  // Each word of a code element (between spaces and <wbr>s) in a <span class="word"> that extra.css keeps on one
  // line, so `--scan-values` never wraps at its hyphens; code with a word longer than LONG_WORD is marked `long`
  // instead, and may break anywhere.
  function wholeWords(code) {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    if (nodes.some((node) => node.data.split(/\s+/).some((word) => word.length > LONG_WORD))) {
      code.classList.add("long");
      return;
    }
    for (const node of nodes) {
      const fragment = document.createDocumentFragment();
      for (const part of node.data.split(/(\s+)/)) {
        if (!part) continue;
        if (/^\s+$/.test(part)) {
          fragment.append(part);
          continue;
        }
        const word = document.createElement("span");
        word.className = "word";
        word.textContent = part;
        fragment.append(word);
      }
      node.replaceWith(fragment);
    }
  }

  function prepare() {
    for (const table of document.querySelectorAll(".md-typeset table:not([class])")) {
      const headers = [...table.querySelectorAll(":scope > thead th")].map((th) => th.textContent.trim());
      for (const row of table.querySelectorAll(":scope > tbody > tr")) {
        [...row.children].forEach((cell, index) => {
          if (headers[index]) cell.dataset.label = headers[index];
        });
      }
      table.querySelectorAll("td code, td a").forEach(breakable);
      table.querySelectorAll("td code").forEach(wholeWords);
    }
  }

  if (window.document$) window.document$.subscribe(prepare);
  else document.addEventListener("DOMContentLoaded", prepare);
})();
