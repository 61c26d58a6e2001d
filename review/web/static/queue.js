// Review queue and claim page keys (app.js handles the declarative data-key shortcuts).
// Queue: j / k move the selected row (the first j selects the first row), Enter / o open it,
// x toggles its bulk checkbox.
// Claim page: 1 … 9 toggle the n-th debunk's link checkbox without moving the focus, so that
// the next key (c, d, n …) still reaches the shortcuts.
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "INPUT") {
      var type = (el.getAttribute("type") || "text").toLowerCase();
      return type !== "checkbox" && type !== "radio" && type !== "button" && type !== "submit";
    }
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-claim-id]"));
    var current = -1;

    function select(i) {
      if (!rows.length) return;
      i = Math.max(0, Math.min(rows.length - 1, i));
      if (current >= 0 && rows[current]) {
        rows[current].classList.remove("selected");
        rows[current].removeAttribute("aria-selected");
      }
      current = i;
      rows[i].classList.add("selected");
      rows[i].setAttribute("aria-selected", "true");
      if (rows[i].scrollIntoView) rows[i].scrollIntoView({ block: "nearest" });
    }

    function open(row) {
      var href = row.getAttribute("data-href");
      if (href && href.charAt(0) === "/" && href.charAt(1) !== "/") window.location.assign(href);
    }

    // Nothing is selected at first: j (or k) selects the first row.
    rows.forEach(function (row, i) {
      row.addEventListener("click", function () { select(i); });
      row.addEventListener("dblclick", function (ev) {
        if (ev.target.tagName !== "INPUT") open(row);
      });
    });

    // A checkbox clicked with the mouse gives the focus back, so that the shortcuts keep working.
    document.querySelectorAll('input[type="checkbox"]').forEach(function (box) {
      box.addEventListener("click", function (ev) {
        if (ev.detail > 0) window.setTimeout(function () { box.blur(); }, 0);
      });
    });

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
      var target = ev.target;
      if (typing(target)) return;
      if (/^[1-9]$/.test(ev.key)) {
        var boxes = document.querySelectorAll('input[name="debunk_ids"]');
        var box = boxes[parseInt(ev.key, 10) - 1];
        if (box && !box.disabled) {
          box.checked = !box.checked;
          box.dispatchEvent(new Event("change", { bubbles: true }));
          ev.preventDefault();
        }
        return;
      }
      if (!rows.length) return;
      var onControl = target && (target.tagName === "A" || target.tagName === "BUTTON");
      if (ev.key === "j") { select(current + 1); ev.preventDefault(); }
      else if (ev.key === "k") { select(current - 1); ev.preventDefault(); }
      else if ((ev.key === "o" || ev.key === "Enter") && !onControl && current >= 0) { open(rows[current]); ev.preventDefault(); }
      else if (ev.key === "x" && current >= 0) {
        var bulk = rows[current].querySelector("input[data-bulk]");
        if (bulk) { bulk.checked = !bulk.checked; ev.preventDefault(); }
      }
    });
  });
})();
