// berth.js — the UI's own small script. Pages work without it; it adds copy
// buttons and focus handling for htmx swaps. Loaded from /static (CSP
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

  // When a new token appears — swapped in by htmx, or on the full page a
  // plain form post returns — move focus to it, so keyboard and screen-reader
  // users land on the secret they must copy.
  function focusNewToken(root) {
    var box = root && root.querySelector ? root.querySelector("#new-token") : null;
    if (box) box.focus();
  }
  document.addEventListener("htmx:load", function (ev) { focusNewToken(ev.detail && ev.detail.elt); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { focusNewToken(document); });
  } else {
    focusNewToken(document);
  }
})();
