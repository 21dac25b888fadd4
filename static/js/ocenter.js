// Glue only: behaviour lives on the server, htmx swaps what it sends.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    button.textContent = "✓";
  });
});

// A dropped socket reconnects by itself (htmx's ws extension), within 10 s of
// the server taking connections again (Redis restarted, say); what happened
// meanwhile is caught up by fetching the live region again from the server.
htmx.config.wsReconnectDelay = (retries) => Math.min(10000, 500 * 2 ** retries) * (0.5 + Math.random() / 2);
const opened = new WeakSet();
document.addEventListener("htmx:wsOpen", (event) => {
  const region = event.detail.elt;
  if (!opened.has(region)) {
    opened.add(region);
    return;
  }
  if (region.id) {
    htmx.ajax("GET", window.location.href, { target: "#" + region.id, select: "#" + region.id, swap: "outerHTML" });
  }
});

// A form answered with errors: focus goes to the first field that has one (or the form's own error), not the page body.
document.addEventListener("htmx:afterSwap", (event) => {
  const swapped = event.detail.elt;
  const wrong = swapped.querySelector && swapped.querySelector('[aria-invalid="true"], form .error');
  if (!wrong) return;
  if (!wrong.matches("input, select, textarea")) wrong.setAttribute("tabindex", "-1");
  wrong.focus();
});

// Times are shown in the browser's zone: the server reads it from this cookie (ocenter/timezones.py).
(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && !document.cookie.split("; ").includes("ocenter_tz=" + encodeURIComponent(zone))) {
    document.cookie = "ocenter_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();

// A form that asks first (data-confirm, in the page's language): no inline script.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// A select that submits its form when changed (data-autosubmit): no inline handler, as the page's policy allows none.
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.requestSubmit();
});
