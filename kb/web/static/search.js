// Progressive enhancement for every page. Without this file the site still works: search forms are
// plain GET forms, the table of contents is an open <details>, glossary terms keep their title.
// With it: search as you type (debounced, stale requests cancelled), a keyboard-driven dropdown,
// live results on /search that keep the URL shareable, "/" and Ctrl/Cmd-K to search, a theme
// toggle, highlighted search words, copyable section links, focusable glossary tooltips and a
// table of contents that follows the reader.
(function () {
  "use strict";
  var DEBOUNCE_MS = 150;
  var LIVE_HEADER = { "X-Requested-With": "live-search" };  // lets the server tell keystrokes from searches
  var root = document.documentElement;

  function $(sel, scope) { return (scope || document).querySelector(sel); }
  function $all(sel, scope) { return Array.prototype.slice.call((scope || document).querySelectorAll(sel)); }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function announce(text) {
    var s = $("#live-status");
    if (!s) return;
    s.textContent = "";
    setTimeout(function () { s.textContent = text; }, 30);  // a change, even to the same words, is announced
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  // The words to mark on the guide page: what the search matched (corrected spellings, acronyms
  // and their expansions) when the API says so, else the query as typed.
  function sectionHref(hit, q, data) {
    var words = data && data.highlight && data.highlight.length ? data.highlight.join(" ") : q;
    return "/guides/" + encodeURIComponent(hit.slug) + "?h=" + encodeURIComponent(words) + (hit.anchor ? "#" + encodeURIComponent(hit.anchor) : "");
  }
  // Which result was followed: the search's random id, the guide and its rank, sent as a beacon (see
  // followed()); result links on /search also carry a ping attribute. As-you-type searches are not
  // recorded, so their query goes along and is recorded with the click.
  function clickAttr(data, slug, rank, q) {
    if (!data || !data.search_id) return "";
    return ' data-click="' + escapeHtml("/api/click?s=" + encodeURIComponent(data.search_id) + "&g=" + encodeURIComponent(slug) + "&r=" + rank + "&q=" + encodeURIComponent(q)) + '"';
  }
  function followed(link) {
    var url = link && link.getAttribute("data-click");
    if (url && navigator.sendBeacon) { try { navigator.sendBeacon(url); } catch (e) { /* analytics never blocks a reader */ } }
  }
  function isTyping(el) { return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)); }

  // ---- one query in flight at a time: debounce, cancel the stale request, ignore late answers ----
  function LiveQuery(key, fetcher, view) {
    this.key = key;          // () -> string: what to search for ("" means nothing)
    this.fetcher = fetcher;  // (key, AbortSignal) -> Promise
    this.view = view;        // {loading(key), show(key, result), error(key), clear()}
    this.timer = null;
    this.controller = null;
    this.seq = 0;
    this.last = null;
  }
  LiveQuery.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.run(false); }, DEBOUNCE_MS);
  };
  LiveQuery.prototype.run = function (force) {
    var self = this;
    clearTimeout(this.timer);
    var key = this.key();
    if (!force && key === this.last) return;
    this.last = key;
    if (this.controller) this.controller.abort();
    this.controller = null;
    var mine = ++this.seq;
    if (!key) { this.view.clear(); return; }
    this.controller = typeof AbortController === "function" ? new AbortController() : null;
    this.view.loading(key);
    this.fetcher(key, this.controller ? this.controller.signal : undefined).then(function (result) {
      if (mine === self.seq) self.view.show(key, result);
    }, function (err) {
      if (mine === self.seq && !(err && err.name === "AbortError")) self.view.error(key);
    });
  };
  LiveQuery.prototype.forget = function () { this.last = null; };

  // ---- theme toggle ----------------------------------------------------------------------------
  function initTheme() {
    var btn = $("#theme-toggle");
    if (!btn) return;
    var mq = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
    function effective() { return root.getAttribute("data-theme") || (mq && mq.matches ? "dark" : "light"); }
    function sync() { btn.setAttribute("aria-pressed", effective() === "dark" ? "true" : "false"); }
    btn.hidden = false;
    sync();
    btn.addEventListener("click", function () {
      var next = effective() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("theme", next); } catch (e) { /* storage blocked: this page only */ }
      sync();
      announce(next === "dark" ? "Dark theme" : "Light theme");
    });
    if (mq && mq.addEventListener) mq.addEventListener("change", sync);
  }

  // ---- the search box's dropdown: an ARIA combobox over /api/search ----------------------------
  function initCombobox(form) {
    var input = $("[data-search-input]", form);
    var panel = $(".live-results", form);
    if (!input || !panel || !window.fetch) return;
    var list = $('[role="listbox"]', panel);
    var msg = $(".lr-message", panel);
    var keys = $(".lr-keys", panel);
    var askBase = form.getAttribute("data-ask-url") || "";
    var active = -1;

    function options() { return $all('[role="option"]', list); }
    function open() { panel.hidden = false; input.setAttribute("aria-expanded", "true"); }
    function close() { panel.hidden = true; input.setAttribute("aria-expanded", "false"); setActive(-1); }
    function setActive(i) {
      var opts = options();
      active = i;
      opts.forEach(function (o, j) { o.setAttribute("aria-selected", j === i ? "true" : "false"); });
      if (i >= 0 && opts[i]) {
        input.setAttribute("aria-activedescendant", opts[i].id);
        opts[i].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
    function askLink(q) {
      return askBase ? ' <a href="' + escapeHtml(askBase + encodeURIComponent("Guide request: " + q.slice(0, 150))) + '">Ask the year above for this guide</a>.' : "";
    }

    var live = new LiveQuery(
      function () { return input.value.trim(); },
      function (q, signal) {
        var params = new URLSearchParams({ q: q, limit: "8" });
        return fetch("/api/search?" + params.toString(), { signal: signal, headers: Object.assign({ Accept: "application/json" }, LIVE_HEADER) })
          .then(function (r) { return r.json(); });
      },
      {
        loading: function () {
          panel.classList.add("is-loading");
          if (panel.hidden || !options().length) { msg.textContent = "Searching…"; open(); }
        },
        clear: function () { panel.classList.remove("is-loading"); list.innerHTML = ""; msg.textContent = ""; keys.textContent = ""; close(); },
        error: function () {
          panel.classList.remove("is-loading");
          list.innerHTML = "";
          msg.textContent = "Search is not available right now. Press Enter for the full results page.";
          open();
        },
        show: function (q, data) {
          panel.classList.remove("is-loading");
          active = -1;
          input.removeAttribute("aria-activedescendant");
          if (!data || !data.ok) {
            list.innerHTML = "";
            msg.textContent = (data && data.error) || "That search could not be run.";
            keys.textContent = "";
            open();
            announce(msg.textContent);
            return;
          }
          var html = [];
          var groups = data.groups || [];
          if (data.answer) {
            // the passage that answers, first: Enter on it opens the guide at that passage
            html.push('<a role="option" tabindex="-1" aria-selected="false" class="lr-answer" id="' + input.id + '-opt-answer" href="' + escapeHtml(data.answer.url) + '"' +
              clickAttr(data, data.answer.slug, 1, q) + ">" +
              '<span class="lr-answer-label">Answer: </span>' +
              '<span class="lr-answer-text">' + data.answer.html + "</span>" +  // escaped server-side; only <mark> is added
              '<span class="lr-section">' + escapeHtml(data.answer.title) + " · " + escapeHtml(data.answer.heading) + "</span></a>");
          }
          groups.forEach(function (g, gi) {
            g.sections.forEach(function (h, i) {
              html.push('<a role="option" tabindex="-1" aria-selected="false" id="' + input.id + "-opt-" + html.length + '" href="' + escapeHtml(sectionHref(h, q, data)) + '"' + clickAttr(data, g.slug, gi + 1, q) + ">" +
                (i === 0 ? '<span class="lr-guide">' + escapeHtml(g.title) + "</span>" : "") +
                '<span class="lr-section">' + escapeHtml(h.heading) + "</span>" +
                '<span class="lr-snippet">' + h.snippet + "</span></a>");  // snippets are escaped server-side; only <mark> is added
            });
          });
          if (html.length) {
            html.push('<a role="option" tabindex="-1" aria-selected="false" class="lr-all" id="' + input.id + '-opt-all" href="/search?q=' + encodeURIComponent(q) + '">' +
              "See all results for “" + escapeHtml(q) + "”</a>");
            // a corrected spelling is said, never silently applied; the results page offers the way back
            var note = data.corrected && data.did_you_mean ? "Showing results for <strong>" + escapeHtml(data.did_you_mean) + "</strong>. " : "";
            if (data.coverage === "not_covered" || data.confident === false) msg.innerHTML = note + "No guide covers this yet." + askLink(q) + " The closest we have:";
            else if (data.coverage === "related") msg.innerHTML = note + "No guide answers this exactly; these touch on it:";
            else msg.innerHTML = note;
            keys.textContent = "↑ ↓ to choose · Enter to open · Esc to close";
            announce((data.answer ? "Answer found in " + data.answer.title + ". " : "") + plural(groups.length, "guide") + " found. Use the up and down arrows to choose a section.");
          } else {
            msg.innerHTML = "No guide answers this yet." + askLink(q);
            keys.textContent = "";
            announce("No guide answers this yet.");
          }
          list.innerHTML = html.join("");
          list.setAttribute("data-query", q);  // which question these options answer
          open();
        }
      }
    );

    input.addEventListener("input", function () { live.schedule(); });
    input.addEventListener("focus", function () { if (input.value.trim() && (options().length || msg.textContent)) open(); });
    input.addEventListener("keydown", function (e) {
      var opts = options();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (panel.hidden) {
          if (!input.value.trim()) return;
          e.preventDefault();
          if (opts.length) open(); else live.run(true);
          return;
        }
        if (!opts.length) return;
        e.preventDefault();
        if (e.key === "ArrowDown") setActive(active < opts.length - 1 ? active + 1 : 0);
        else setActive(active > 0 ? active - 1 : (active === 0 ? -1 : opts.length - 1));
      } else if (e.key === "Enter") {
        if (!panel.hidden && active >= 0 && opts[active]) {
          e.preventDefault();
          followed(opts[active]);
          window.location.assign(opts[active].getAttribute("href"));
        }
      } else if (e.key === "Escape") {
        e.preventDefault();
        if (!panel.hidden) { close(); } else if (input.value) { input.value = ""; live.run(false); }
      } else if (e.key === "Tab") {
        close();
      }
    });
    list.addEventListener("mousemove", function (e) {
      var opt = e.target.closest ? e.target.closest('[role="option"]') : null;
      if (opt) { var i = options().indexOf(opt); if (i !== active) setActive(i); }
    });
    document.addEventListener("click", function (e) { if (!form.contains(e.target)) close(); });
    form.addEventListener("focusout", function (e) { if (e.relatedTarget && !form.contains(e.relatedTarget)) close(); });
  }

  // ---- /search: results update in place as you type; the URL follows so it can be shared ---------
  function initResultsPage() {
    var form = $("[data-results-form]");
    var region = $("#search-results");
    if (!form || !region || !window.fetch || !window.DOMParser || !window.history.replaceState) return;
    var input = $("[data-search-input]", form);
    var heading = $("#search-heading");

    function key() {
      var p = new URLSearchParams();
      new FormData(form).forEach(function (v, k) { if (v !== "" || k === "q") p.append(k, String(v).trim()); });
      return p.toString();
    }
    var committed = false;  // Enter: a search the reader meant, recorded like a page load (no LIVE_HEADER)
    var live = new LiveQuery(
      key,
      function (k, signal) {
        var headers = committed ? { Accept: "text/html" } : Object.assign({ Accept: "text/html" }, LIVE_HEADER);
        committed = false;
        return fetch("/search?" + k, { signal: signal, headers: headers })
          .then(function (r) { return r.text(); });
      },
      {
        loading: function () { region.setAttribute("aria-busy", "true"); },
        clear: function () {},
        error: function () {
          region.removeAttribute("aria-busy");
          announce("Search is not available right now.");
        },
        show: function (k, html) {
          region.removeAttribute("aria-busy");
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("search-results");
          if (fresh) {
            region.innerHTML = fresh.innerHTML;
          } else {  // an error page, e.g. a question longer than the limit
            var m = doc.querySelector("main h1 + p");
            region.innerHTML = '<div class="empty-state"><h2>That search could not be run</h2><p>' + escapeHtml(m ? m.textContent : "Please try again.") + "</p></div>";
          }
          var h1 = doc.querySelector("main h1");
          if (heading && h1 && fresh) heading.textContent = h1.textContent;
          if (doc.title) document.title = doc.title;
          history.replaceState(null, "", "/search?" + k);
          var count = $("#result-count", region);
          announce(count ? count.textContent : ($("[data-empty] h2", region) || {}).textContent || "");
        }
      }
    );
    live.last = key();  // the page already shows these results

    input.addEventListener("input", function () { live.schedule(); });
    $all("select", form).forEach(function (s) { s.addEventListener("change", function () { live.run(false); }); });
    form.addEventListener("submit", function (e) { e.preventDefault(); committed = true; live.run(true); });

    // arrow keys walk from the box through the result links and back; Escape returns to the box
    function links() { return $all(".results a", region); }
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" && links().length) { e.preventDefault(); links()[0].focus(); }
      else if (e.key === "Escape") { e.preventDefault(); if (input.value) { input.value = ""; live.schedule(); } }
    });
    region.addEventListener("keydown", function (e) {
      var all = links();
      var i = all.indexOf(document.activeElement);
      if (i < 0) return;
      if (e.key === "ArrowDown" && i < all.length - 1) { e.preventDefault(); all[i + 1].focus(); }
      else if (e.key === "ArrowUp") { e.preventDefault(); (i > 0 ? all[i - 1] : input).focus(); }
      else if (e.key === "Escape") { e.preventDefault(); input.focus(); }
    });
  }

  // ---- "/" and Ctrl/Cmd-K put the cursor in the page's search box ------------------------------
  function initShortcuts() {
    document.addEventListener("keydown", function (e) {
      var slash = e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !isTyping(e.target);
      var cmdK = (e.key === "k" || e.key === "K") && (e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey;
      if (!slash && !cmdK) return;
      var box = $("[data-search-input]");
      if (!box) return;
      e.preventDefault();
      box.focus();
      box.select();
    });
  }

  // ---- guide page -----------------------------------------------------------------------------
  function highlight(scope, query) {
    var words = query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(function (w) { return w.length > 2; });
    if (!words.length) return;
    var re = new RegExp("(?<![\\p{L}\\p{N}])(" + words.map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }).join("|") + ")[\\p{L}\\p{N}]*", "giu");
    var walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT, null);
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      var text = node.nodeValue;
      if (!text.trim() || (node.parentNode && /^(MARK|SCRIPT|STYLE|BUTTON)$/.test(node.parentNode.nodeName))) return;
      re.lastIndex = 0;
      if (!re.test(text)) return;
      var frag = document.createDocumentFragment();
      var last = 0;
      text.replace(re, function (m) {
        var offset = arguments[arguments.length - 2];
        frag.appendChild(document.createTextNode(text.slice(last, offset)));
        var mark = document.createElement("mark");
        mark.textContent = m;
        frag.appendChild(mark);
        last = offset + m.length;
        return m;
      });
      frag.appendChild(document.createTextNode(text.slice(last)));
      node.parentNode.replaceChild(frag, node);
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {  // plain-http fallback
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy failed"));
    });
  }

  function sectionLinks(body) {
    $all("h2[id], h3[id], h4[id]", body).forEach(function (heading) {
      var wrap = document.createElement("div");
      wrap.className = "heading-wrap heading-wrap-" + heading.tagName.toLowerCase();
      heading.parentNode.insertBefore(wrap, heading);
      wrap.appendChild(heading);
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "anchor-link";
      btn.textContent = "#";
      btn.title = "Copy link to this section";
      btn.setAttribute("aria-label", "Copy link to section: " + heading.textContent.trim());
      btn.setAttribute("data-anchor", heading.id);
      btn.addEventListener("click", function () {
        var url = window.location.origin + window.location.pathname + "#" + heading.id;
        history.replaceState(null, "", "#" + heading.id);
        function done(ok) {
          btn.textContent = ok ? "Copied" : "#";
          btn.classList.toggle("copied", ok);
          announce(ok ? "Link to this section copied" : "Could not copy: the link is in the address bar");
          setTimeout(function () { btn.textContent = "#"; btn.classList.remove("copied"); }, 1800);
        }
        copyText(url).then(function () { done(true); }, function () { done(false); });
      });
      wrap.appendChild(btn);
    });
  }

  // glossary terms: the native title tooltip is mouse-only, so the first use of each term becomes
  // focusable with a visible tooltip and its expansion spelt out for screen readers
  function glossaryTips(body) {
    var seen = {};
    $all("abbr[title]", body).forEach(function (abbr) {
      var tip = abbr.getAttribute("title");
      var term = abbr.textContent.trim();
      abbr.setAttribute("data-tip", tip);
      abbr.removeAttribute("title");
      if (seen[term]) return;
      seen[term] = true;
      abbr.tabIndex = 0;
      var sr = document.createElement("span");
      sr.className = "visually-hidden";
      sr.textContent = " (" + tip + ")";
      abbr.appendChild(sr);
    });
  }

  function tableOfContents() {
    var details = $("details[data-toc]");
    if (!details) return;
    var summary = $("summary", details);
    var wide = window.matchMedia ? window.matchMedia("(min-width: 64rem)") : { matches: true };
    function fit() {
      details.open = wide.matches;
      if (wide.matches) summary.setAttribute("tabindex", "-1"); else summary.removeAttribute("tabindex");
    }
    fit();
    if (wide.addEventListener) wide.addEventListener("change", fit);
    var links = $all("a[href^='#']", details);
    links.forEach(function (a) {
      a.addEventListener("click", function () { if (!wide.matches) details.open = false; });
    });
    // follow the reader: mark the section being read
    var targets = links.map(function (a) { return document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1))); });
    var ticking = false;
    function spy() {
      ticking = false;
      var line = 120;
      var current = -1;
      targets.forEach(function (t, i) { if (t && t.getBoundingClientRect().top <= line) current = i; });
      links.forEach(function (a, i) {
        if (i === current) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
      });
    }
    window.addEventListener("scroll", function () { if (!ticking) { ticking = true; window.requestAnimationFrame(spy); } }, { passive: true });
    spy();
  }

  function initGuide() {
    var body = $("#guide-body");
    if (!body) return;
    var h = new URLSearchParams(window.location.search).get("h");
    if (h) highlight(body, h.slice(0, 300));
    glossaryTips(body);
    sectionLinks(body);
    tableOfContents();
  }

  function initClicks() {
    function onFollow(e) {
      var link = e.target && e.target.closest ? e.target.closest("a[data-click]") : null;
      if (link && (e.type === "click" || e.button === 1)) followed(link);
    }
    document.addEventListener("click", onFollow, true);
    document.addEventListener("auxclick", onFollow, true);
  }

  function init() {
    initTheme();
    initClicks();
    $all("form[data-live-search]").forEach(initCombobox);
    initResultsPage();
    initShortcuts();
    initGuide();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
