// Keyboard shortcuts of the review pages (templates/evaluations/review_queue.html, review_ab.html):
// each key presses a button or link that is on the page anyway, so everything works without them.
(function () {
  "use strict";
  const KEYS = {
    g: "#review-good", b: "#review-bad", s: "#review-skip",
    "1": "#choose-a", ArrowLeft: "#choose-a", "2": "#choose-b", ArrowRight: "#choose-b", t: "#choose-tie",
  };
  const help = document.getElementById("shortcut-help");
  const helpButton = document.getElementById("shortcut-button");

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  function typing(target) {
    return target instanceof HTMLElement && (target.isContentEditable ||
      ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  function press(selector) {
    const target = document.querySelector(selector);
    if (!target) return false;
    if (target.tagName === "BUTTON" && target.form) {
      if (target.form.dataset.sent) return true; // one verdict per page: a second key press waits
      target.form.dataset.sent = "true";
      target.form.requestSubmit(target);
    } else {
      target.click();
    }
    return true;
  }

  if (helpButton) helpButton.addEventListener("click", toggleHelp);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || typing(event.target)) return;
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (help && help.open) return;
    const selector = KEYS[event.key];
    if (selector && press(selector)) event.preventDefault();
  });
})();
