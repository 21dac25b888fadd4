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
