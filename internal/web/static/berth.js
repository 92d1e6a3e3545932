// berth.js — the UI's own small script. Pages work without it; it adds copy
// buttons, focus handling for htmx swaps, menus that close, and the log
// viewer's pause and filter. Loaded from /static (CSP
// script-src 'self'); nothing in the markup is inline.
(function () {
  "use strict";

  // Copy buttons are hidden by CSS until this runs, so without JavaScript no
  // dead button is shown.
  document.documentElement.classList.add("js");

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP installs have no Clipboard API: select the text instead and
    // fall back to execCommand.
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "sr-only";
      document.body.appendChild(ta);
      ta.select();
      try {
        document.execCommand("copy") ? resolve() : reject(new Error("copy failed"));
      } catch (e) {
        reject(e);
      } finally {
        document.body.removeChild(ta);
      }
    });
  }

  function flash(button, text, ok) {
    var label = button.querySelector(".copy-label");
    if (!label) return;
    var before = label.getAttribute("data-label") || label.textContent;
    label.setAttribute("data-label", before);
    label.textContent = text;
    button.classList.toggle("copied", ok);
    clearTimeout(button._berthTimer);
    button._berthTimer = setTimeout(function () {
      label.textContent = before;
      button.classList.remove("copied");
    }, 1800);
  }

  // One delegated listener, so buttons that htmx swaps in work too.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-copy]");
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    copyText(target.textContent.trim()).then(
      function () { flash(button, "Copied", true); },
      function () {
        var range = document.createRange();
        range.selectNodeContents(target);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        flash(button, "Press Ctrl+C", false);
      }
    );
  });

  // When a new token or invitation link appears — swapped in by htmx, or on the full page a
  // plain form post returns — move focus to it, so keyboard and screen-reader
  // users land on the secret they must copy.
  function focusNewToken(root) {
    var box = root && root.querySelector ? root.querySelector("#new-token, #new-invitation") : null;
    if (box) box.focus();
  }
  document.addEventListener("htmx:load", function (ev) { focusNewToken(ev.detail && ev.detail.elt); });

  // Popovers are <details>: they work without JavaScript; this closes them
  // on a click elsewhere or Escape, as menus do.
  document.addEventListener("click", function (ev) {
    document.querySelectorAll("details.popover[open]").forEach(function (d) {
      if (!d.contains(ev.target)) d.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    document.querySelectorAll("details.popover[open]").forEach(function (d) {
      d.removeAttribute("open");
      var s = d.querySelector("summary");
      if (s) s.focus();
    });
  });

  // A section that refreshes itself (data-poll-pauses) would close a
  // confirmation open in it: skip the refresh until it is closed.
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var elt = ev.detail && ev.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-poll-pauses")) return;
    if (elt.querySelector("details[open]")) ev.preventDefault();
  });

  // Log viewer: htmx refreshes the lines every 2 s. Pause skips those
  // requests; the filter hides lines client-side and survives refreshes;
  // the view sticks to the bottom unless the reader scrolled up.
  function viewerOf(el) { return el && el.closest ? el.closest("[data-log-viewer]") : null; }

  function applyFilter(viewer) {
    var input = viewer.querySelector("[data-log-filter]");
    var q = input ? input.value.trim().toLowerCase() : "";
    var lines = viewer.querySelectorAll(".log-line");
    var shown = 0;
    lines.forEach(function (li) {
      var hit = q === "" || li.textContent.toLowerCase().indexOf(q) !== -1;
      li.classList.toggle("is-hidden", !hit);
      if (hit) shown++;
    });
    var count = viewer.querySelector("[data-log-count]");
    if (count) {
      count.textContent = lines.length === 0 ? "" : q === "" ? lines.length + " lines" : shown + " of " + lines.length + " lines";
    }
  }

  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }

  function initViewer(viewer) {
    if (viewer._berthInit) return;
    viewer._berthInit = true;
    var box = viewer.querySelector("[data-log-lines]");
    if (box) box.scrollTop = box.scrollHeight;
    var input = viewer.querySelector("[data-log-filter]");
    if (input) input.addEventListener("input", function () { applyFilter(viewer); });
    var toggle = viewer.querySelector("[data-log-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var paused = toggle.getAttribute("aria-pressed") !== "true";
        toggle.setAttribute("aria-pressed", paused ? "true" : "false");
        var label = toggle.querySelector("[data-log-toggle-label]");
        if (label) label.textContent = paused ? "Resume" : "Pause";
      });
    }
    applyFilter(viewer);
  }

  function initViewers(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-log-viewer]")) initViewer(root);
    root.querySelectorAll("[data-log-viewer]").forEach(initViewer);
  }

  document.addEventListener("htmx:beforeRequest", function (ev) {
    var elt = ev.detail && ev.detail.elt;
    var viewer = viewerOf(elt);
    if (!viewer || !elt.hasAttribute("data-log-lines")) return;
    var toggle = viewer.querySelector("[data-log-toggle]");
    if (toggle && toggle.getAttribute("aria-pressed") === "true") ev.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (target && target.hasAttribute && target.hasAttribute("data-log-lines")) target._berthStick = atBottom(target);
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (!target || !target.hasAttribute || !target.hasAttribute("data-log-lines")) return;
    if (target._berthStick) target.scrollTop = target.scrollHeight;
    var viewer = viewerOf(target);
    if (viewer) applyFilter(viewer);
  });
  document.addEventListener("htmx:load", function (ev) { initViewers(ev.detail && ev.detail.elt); });

  // Build output: the poll appends lines out of band; the view follows
  // them unless the reader scrolled up.
  function buildLogOf(el) { return el && el.closest ? el.closest("[data-build-log]") : null; }
  document.addEventListener("htmx:oobBeforeSwap", function (ev) {
    var box = buildLogOf(ev.target);
    if (box) box._berthStick = atBottom(box);
  });
  document.addEventListener("htmx:oobAfterSwap", function (ev) {
    var box = buildLogOf(ev.target);
    if (box && box._berthStick) box.scrollTop = box.scrollHeight;
  });

  function ready() {
    focusNewToken(document);
    initViewers(document);
    document.querySelectorAll("[data-build-log]").forEach(function (box) { box.scrollTop = box.scrollHeight; });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
