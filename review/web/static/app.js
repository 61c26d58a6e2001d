// piyao workbench: keyboard shortcuts, bulk selection, confirmations. No inline scripts (CSP).
// Shortcuts are declared in the markup: any element with data-key="x" is clicked (or focused,
// for inputs) when x is pressed outside a text field; data-key-help="..." describes it for the "?" dialog.
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "INPUT") {
      // Checkboxes, radios and buttons take no text: shortcuts keep working after a click on one.
      var t = (el.getAttribute("type") || "text").toLowerCase();
      return ["checkbox", "radio", "button", "submit", "reset", "hidden", "image"].indexOf(t) < 0;
    }
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function visible(el) { return !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length); }
  function shortcut(key) {
    var all = document.querySelectorAll('[data-key="' + CSS.escape(key) + '"]');
    for (var i = 0; i < all.length; i++) if (visible(all[i]) && !all[i].disabled) return all[i];
    return null;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape" && typing(document.activeElement)) { document.activeElement.blur(); return; }
    if (typing(ev.target)) return;
    if (ev.key === "?") {
      var d = document.getElementById("help-dialog"), box = document.getElementById("help-keys");
      if (d && box) {
        box.textContent = "";
        document.querySelectorAll("[data-key][data-key-help]").forEach(function (el) {
          var p = document.createElement("p"), k = document.createElement("kbd");
          k.textContent = el.getAttribute("data-key");
          p.appendChild(k);
          p.appendChild(document.createTextNode(" " + el.getAttribute("data-key-help")));
          box.appendChild(p);
        });
        d.showModal();
      }
      ev.preventDefault();
      return;
    }
    var el = shortcut(ev.key);
    if (!el) return;
    ev.preventDefault();
    if (typing(el)) { el.focus(); if (el.select) el.select(); }
    else { el.click(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    // Mark the current room in the navigation.
    var room = document.body.getAttribute("data-room") || location.pathname.split("/")[1];
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      if (a.getAttribute("data-nav") === room) a.classList.add("active");
    });
    // Forms asking for confirmation: data-confirm="message".
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });
    // Bulk selection: a checkbox with data-select-all toggles every [data-bulk] checkbox.
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input[data-bulk]").forEach(function (b) { b.checked = box.checked; });
      });
    });
    var first = document.querySelector("[data-autofocus]");
    if (first) first.focus();
  });
})();
