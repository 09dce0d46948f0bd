// asyncqueue admin page: live refresh over Server-Sent Events, and a few conveniences.
// The pages work without it; with it, the part of a page inside <main id="live"> is
// re-fetched and swapped in when the server says something on it changed.
(function () {
  "use strict";

  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  var note = document.getElementById("live-note");

  // A page answering a POST (an error shown with what was typed) has the POST's address:
  // put the page's own address back, so a reload or a live refresh reads the page.
  var canonical = live && live.getAttribute("data-url");
  if (canonical && window.history && location.pathname !== canonical) {
    history.replaceState(null, "", canonical);
  }
  var source = null;
  var timer = null;
  var lastRefresh = 0;
  // At most one refresh a second (or as the page asks: the overview counts every task, so it
  // refreshes less often), however busy the queue.
  var MIN_GAP = live ? Number(live.getAttribute("data-live-gap")) || 1000 : 1000;

  function setState(on, text) {
    if (!state) return;
    state.hidden = false;
    state.className = "live-state " + (on ? "on" : "off");
    state.textContent = text;
  }

  function connect() {
    if (source) source.close();
    source = null;
    var url = live && live.getAttribute("data-live");
    if (!url || !window.EventSource) return;
    source = new EventSource(url);
    source.addEventListener("open", function () { setState(true, "live"); });
    source.addEventListener("change", schedule);
    source.addEventListener("logout", function () {
      source.close();
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    });
    source.addEventListener("error", function () {
      setState(false, "reconnecting");
      if (source && source.readyState === EventSource.CLOSED) {
        // The server refused the stream (logged out?): find out with a normal refresh.
        source = null;
        setTimeout(refresh, 3000);
      }
    });
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(0, MIN_GAP - (Date.now() - lastRefresh)));
  }

  // busy reports whether the user is typing in the live part: then the refresh waits.
  function busy() {
    var a = document.activeElement;
    if (a && live.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return true;
    var fields = live.querySelectorAll("input:not([type=hidden]), textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) return true;
      // Text the server put back after an error (bad JSON) stays until it is dealt with.
      if (fields[i].hasAttribute("data-keep") && fields[i].value !== "") return true;
    }
    return false;
  }

  function refresh() {
    timer = null;
    if (busy()) {
      timer = setTimeout(refresh, 2000);
      return;
    }
    lastRefresh = Date.now();
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (res.redirected && new URL(res.url).pathname === "/login") {
          window.location.assign(res.url);
          return null;
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        if (!fresh) return;
        var open = {};
        live.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
        live.replaceChildren.apply(live, Array.prototype.map.call(fresh.childNodes, function (n) {
          return document.importNode(n, true);
        }));
        live.querySelectorAll("details[id]").forEach(function (d) {
          if (d.id in open) d.open = open[d.id];
        });
        document.title = doc.title;
        // Screen readers hear that the page changed (the region itself is not read out
        // again: it is replaced whole).
        if (note) note.textContent = "Updated at " + new Date().toLocaleTimeString();
        var url = fresh.getAttribute("data-live");
        if (url !== live.getAttribute("data-live") || !source) {
          live.setAttribute("data-live", url || "");
          connect();
        }
        setState(true, "live");
      })
      .catch(function () {
        setState(false, "offline");
        timer = setTimeout(refresh, 5000);
      });
  }

  // Copy buttons: data-copy names the element whose text to copy.
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("button[data-copy]") : null;
    if (!b) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });

  // The status filter applies as soon as it is picked.
  document.querySelectorAll("select.autosubmit").forEach(function (s) {
    s.addEventListener("change", function () {
      // One status picked here replaces the several ones ticked under "More filters".
      s.form.querySelectorAll("input[type=checkbox][name=" + s.name + "]").forEach(function (c) { c.checked = false; });
      s.form.submit();
    });
  });

  if (live) connect();
})();
