// Progressive enhancement: search as you type, keyboard navigation, theme toggle,
// highlighting of the searched words on a guide page and copyable section links.
// Every feature is optional: without this file the plain GET forms and links work.
(function () {
  "use strict";
  var DEBOUNCE_MS = 150;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  // The words to mark on the guide page: what the search actually matched (corrected spellings,
  // acronyms and their expansions), not the raw query.
  function sectionHref(hit, data) {
    var words = (data && data.highlight) || [];
    return "/guides/" + encodeURIComponent(hit.slug) + (words.length ? "?h=" + encodeURIComponent(words.join(" ")) : "") +
      (hit.anchor ? "#" + encodeURIComponent(hit.anchor) : "");
  }
  function searchUrl(q, data, extra) {
    var params = new URLSearchParams({ q: q });
    var f = (data && data.filters) || {};
    if (f.category) params.set("category", f.category);
    if (f.tag) params.set("tag", f.tag);
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    return "/search?" + params.toString();
  }
  // "Showing results for X; search instead for Y" (or "Did you mean X?"), never a silent rewrite.
  function didYouMeanHtml(q, data) {
    if (!data || !data.did_you_mean) return "";
    var fix = '<a href="' + escapeHtml(searchUrl(data.did_you_mean, data)) + '"><strong>' + escapeHtml(data.did_you_mean) + "</strong></a>";
    if (data.corrected) {
      return '<p class="did-you-mean" role="status">Showing results for ' + fix + '; search instead for <a href="' +
        escapeHtml(searchUrl(q, data, { spell: "0" })) + '">' + escapeHtml(q) + "</a>.</p>";
    }
    return '<p class="did-you-mean" role="status">Did you mean ' + fix + "?</p>";
  }

  // ---- theme ---------------------------------------------------------------------------------
  function initTheme() {
    var btn = $("#theme-toggle");
    if (!btn) return;
    btn.addEventListener("click", function () {
      var root = document.documentElement;
      var current = root.getAttribute("data-theme") ||
        (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
      var next = current === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("theme", next); } catch (e) { /* ignore */ }
      btn.setAttribute("aria-pressed", next === "dark" ? "true" : "false");
    });
  }

  // ---- live search ---------------------------------------------------------------------------
  function LiveSearch(input, render) {
    this.input = input;
    this.render = render;
    this.timer = null;
    this.controller = null;
    this.lastQuery = null;
  }
  LiveSearch.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.run(); }, DEBOUNCE_MS);
  };
  LiveSearch.prototype.run = function () {
    var self = this;
    var q = this.input.value.trim();
    if (q === this.lastQuery) return;
    this.lastQuery = q;
    if (this.controller) this.controller.abort();  // drop the stale request
    if (!q) { this.render.clear(); return; }
    this.controller = ("AbortController" in window) ? new AbortController() : null;
    this.render.loading(q);
    var params = new URLSearchParams({ q: q, limit: "8" });
    var cat = $("#f-category");
    var tag = $("#f-tag");
    if (cat && cat.value && this.render.usesFilters) params.set("category", cat.value);
    if (tag && tag.value && this.render.usesFilters) params.set("tag", tag.value);
    fetch("/api/search?" + params.toString(), { signal: this.controller ? this.controller.signal : undefined, headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (q === self.input.value.trim()) self.render.show(q, data); })
      .catch(function (err) { if (!err || err.name !== "AbortError") self.render.error(q); });
  };

  function announce(text) { var s = $("#live-status"); if (s) s.textContent = text; }

  function dropdownRenderer(input, box) {
    return {
      usesFilters: false,
      clear: function () { box.hidden = true; box.innerHTML = ""; input.setAttribute("aria-expanded", "false"); },
      loading: function () {
        if (box.hidden) { box.innerHTML = '<div class="lr-loading">Searching…</div>'; box.hidden = false; }
        input.setAttribute("aria-expanded", "true");
      },
      error: function () { box.innerHTML = '<div class="lr-empty">Search is not available right now. Press Enter to try the full results page.</div>'; box.hidden = false; },
      show: function (q, data) {
        if (!data.ok) { box.innerHTML = '<div class="lr-empty">' + escapeHtml(data.error || "Search failed") + "</div>"; box.hidden = false; return; }
        var html = [];
        if (data.did_you_mean && data.corrected) {
          html.push('<div class="lr-note">Showing results for <strong>' + escapeHtml(data.did_you_mean) + "</strong></div>");
        }
        (data.groups || []).forEach(function (g) {
          g.sections.forEach(function (h, i) {
            html.push('<a role="option" id="lr-' + html.length + '" href="' + escapeHtml(sectionHref(h, data)) + '">' +
              (i === 0 ? '<span class="lr-guide">' + escapeHtml(g.title) + "</span><br>" : "") +
              '<span class="lr-section">' + escapeHtml(h.heading) + "</span>" +
              '<span class="lr-snippet">' + h.snippet + "</span></a>");  // snippet is escaped server-side, <mark> only
          });
        });
        if (!html.length) {
          html.push('<div class="lr-empty">No guide answers this yet: <a href="/search?q=' + encodeURIComponent(q) + '">see options</a> or ask for one.</div>');
        } else {
          html.push('<a role="option" id="lr-all" href="/search?q=' + encodeURIComponent(q) + '">See all results for “' + escapeHtml(q) + "”</a>");
        }
        box.innerHTML = html.join("");
        box.hidden = false;
        input.setAttribute("aria-expanded", "true");
        announce((data.groups || []).length + " guides found");
      }
    };
  }

  function resultsRenderer(list) {
    return {
      usesFilters: true,
      clear: function () {},
      loading: function () { list.setAttribute("aria-busy", "true"); },
      error: function () { list.removeAttribute("aria-busy"); },
      show: function (q, data) {
        list.removeAttribute("aria-busy");
        var url = new URL(window.location.href);
        url.searchParams.set("q", q);
        history.replaceState(null, "", url.toString());
        var h1 = $(".search-page h1");
        if (h1) h1.textContent = "Results for “" + q + "”";
        document.title = q + " – search – The Year Above";
        if (!data.ok) return;
        var slot = $("#did-you-mean-slot");
        if (slot) slot.innerHTML = didYouMeanHtml(q, data);
        var html = (data.groups || []).map(function (g) {
          return '<li class="result"><h2 class="result-title"><a href="/guides/' + encodeURIComponent(g.slug) + '">' + escapeHtml(g.title) + "</a></h2><ul class=\"sections\">" +
            g.sections.map(function (h) {
              return '<li><a class="section-link" href="' + escapeHtml(sectionHref(h, data)) + '">' + escapeHtml(h.heading) + '</a><p class="snippet">' + h.snippet + "</p></li>";
            }).join("") + "</ul></li>";
        }).join("");
        list.innerHTML = html || '<li class="empty-state"><h2>No guide answers this yet</h2><p>Try other words, or ask for a guide on it.</p></li>';
        var count = $(".result-count");
        if (count) count.textContent = (data.groups || []).length + " guides";
        announce((data.groups || []).length + " guides found");
      }
    };
  }

  function keyboardNav(input, box, onEscape) {
    input.addEventListener("keydown", function (e) {
      var options = $all('[role="option"]', box);
      var current = options.findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (!options.length || box.hidden) return;
        e.preventDefault();
        var next = e.key === "ArrowDown" ? Math.min(current + 1, options.length - 1) : Math.max(current - 1, 0);
        options.forEach(function (o) { o.setAttribute("aria-selected", "false"); });
        options[next].setAttribute("aria-selected", "true");
        options[next].scrollIntoView({ block: "nearest" });
        input.setAttribute("aria-activedescendant", options[next].id);
      } else if (e.key === "Enter" && current >= 0 && !box.hidden) {
        e.preventDefault();
        window.location.href = options[current].getAttribute("href");
      } else if (e.key === "Escape") {
        onEscape();
      }
    });
  }

  function initSearch() {
    var input = $("#q");
    var box = $("#live-results");
    if (input && box) {
      var live = new LiveSearch(input, dropdownRenderer(input, box));
      input.addEventListener("input", function () { live.schedule(); });
      keyboardNav(input, box, function () {
        if (!box.hidden) { live.render.clear(); live.lastQuery = null; } else { input.value = ""; }
      });
      document.addEventListener("click", function (e) { if (!box.contains(e.target) && e.target !== input) live.render.clear(); });
    }
    var pageInput = $("#page-q");
    var list = $("#results");
    if (pageInput && list) {
      var livePage = new LiveSearch(pageInput, resultsRenderer(list));
      livePage.lastQuery = pageInput.value.trim();
      pageInput.addEventListener("input", function () { livePage.schedule(); });
      pageInput.addEventListener("keydown", function (e) { if (e.key === "Escape") { pageInput.value = ""; } });
    }
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
      if ((e.key === "/" && !typing) || (e.key.toLowerCase() === "k" && (e.ctrlKey || e.metaKey))) {
        var target = $("#page-q") || $("#hero-q") || $("#q");
        if (target) { e.preventDefault(); target.focus(); target.select(); }
      }
    });
  }

  // ---- guide page: highlight searched words, copyable section links ---------------------------
  function highlight(root, query) {
    var words = query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(function (w) { return w.length > 2; });
    if (!words.length) return;
    var re = new RegExp("\\b(" + words.map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }).join("|") + ")\\w*", "gi");
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, null);
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      if (!node.nodeValue.trim() || (node.parentNode && /^(MARK|SCRIPT|STYLE)$/.test(node.parentNode.nodeName))) return;
      re.lastIndex = 0;
      if (!re.test(node.nodeValue)) return;
      re.lastIndex = 0;
      var frag = document.createDocumentFragment();
      var last = 0;
      node.nodeValue.replace(re, function (m, _w, offset) {
        frag.appendChild(document.createTextNode(node.nodeValue.slice(last, offset)));
        var mark = document.createElement("mark");
        mark.textContent = m;
        frag.appendChild(mark);
        last = offset + m.length;
        return m;
      });
      frag.appendChild(document.createTextNode(node.nodeValue.slice(last)));
      node.parentNode.replaceChild(frag, node);
    });
  }

  function initGuide() {
    var body = $("#guide-body");
    if (!body) return;
    var h = new URLSearchParams(window.location.search).get("h");
    if (h) highlight(body, h.slice(0, 300));
    $all("h2[id], h3[id]", body).forEach(function (heading) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "anchor-link";
      btn.textContent = "#";
      btn.setAttribute("aria-label", "Copy link to section: " + heading.textContent);
      btn.addEventListener("click", function () {
        var url = window.location.origin + window.location.pathname + "#" + heading.id;
        history.replaceState(null, "", "#" + heading.id);
        if (navigator.clipboard) navigator.clipboard.writeText(url).then(function () { announce("Link copied"); }, function () {});
      });
      heading.appendChild(btn);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initTheme(); initSearch(); initGuide(); });
})();
