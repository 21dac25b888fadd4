// The GPU heatmap: a cell per GPU from the figures in the page (pools/views.py gpu_heatmap), recoloured as the
// server sends changed GPUs over the page's socket (#heatmap-update, swapped in out of band).
(() => {
  const root = document.getElementById("heatmap");
  if (!root) return;
  const data = JSON.parse(document.getElementById("heatmap-data").textContent);
  const words = JSON.parse(document.getElementById("heatmap-words").textContent);
  const tip = document.getElementById("heatmap-tip");
  const mode = document.getElementById("heatmap-mode");
  const lang = document.documentElement.lang;
  const gpus = new Map(data.gpus.map((g) => [g[0], g]));
  let held = data.held;
  const cells = new Map();
  const order = [];
  // [id, pool, node, index, model, memory, units, mib, utilization, health]
  const share = (g) => (mode.value === "utilization" ? g[8] : g[6]);

  function paint(cell, g) {
    const value = share(g);
    cell.classList.toggle("sick", g[9] !== "healthy");
    cell.classList.toggle("none", value === null);
    cell.style.setProperty("--v", value === null ? 0 : Math.min(100, value));
    cell.dataset.value = value === null ? "" : value;
  }

  function describe(g) {
    const n = (x) => x.toLocaleString(lang);
    const lines = [`${g[1]} · ${g[2]} #${g[3]} · ${g[4]}`, `${n(g[6])} / 100 ${words.units} · ${n(g[7])} / ${n(g[5])} MiB`];
    lines.push(g[8] === null ? words.no_figures : `${words.utilization} ${g[8]}%`);
    if (g[9] !== "healthy") lines.push(words.unhealthy);
    const owners = held[g[0]] || [];
    lines.push(owners.length ? `${words.held_by}: ` + owners.map((h) => `${h[0]} ${n(h[1])} ${words.units} · ${n(h[2])} MiB (${h[3].slice(0, 8)})`).join("; ") : words.free);
    return lines.join("\n");
  }

  function show(cell) {
    const g = gpus.get(Number(cell.dataset.id));
    tip.textContent = describe(g);
    root.setAttribute("aria-activedescendant", cell.id);
    root.querySelectorAll(".cell.active").forEach((c) => c.classList.remove("active"));
    cell.classList.add("active");
  }

  const started = performance.now();
  const fragment = document.createDocumentFragment();
  let group = null;
  let pool = null;
  for (const g of data.gpus) {
    if (g[1] !== pool) {
      pool = g[1];
      const title = document.createElement("h3");
      title.textContent = pool;
      group = document.createElement("div");
      group.className = "cells";
      group.setAttribute("role", "row");
      fragment.append(title, group);
    }
    const cell = document.createElement("span");
    cell.className = "cell";
    cell.id = "gpu-cell-" + g[0];
    cell.dataset.id = g[0];
    cell.setAttribute("role", "gridcell");
    paint(cell, g);
    cells.set(g[0], cell);
    order.push(cell);
    group.append(cell);
  }
  root.append(fragment);
  root.classList.toggle("roomy", order.length <= 1000); // a few GPUs: bigger cells
  root.dataset.drawnMs = Math.round(performance.now() - started);
  root.dataset.cells = order.length;

  root.addEventListener("mouseover", (event) => {
    const cell = event.target.closest(".cell");
    if (cell) show(cell);
  });
  let at = 0;
  root.addEventListener("focus", () => order.length && show(order[at]));
  root.addEventListener("keydown", (event) => {
    const across = Math.max(1, Math.round(root.querySelector(".cells").clientWidth / (order[0].offsetWidth + 2)));
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: across, ArrowUp: -across, Home: -at, End: order.length - 1 - at }[event.key];
    if (step === undefined || !order.length) return;
    event.preventDefault();
    at = Math.max(0, Math.min(order.length - 1, at + step));
    show(order[at]);
  });
  mode.addEventListener("change", () => gpus.forEach((g, id) => paint(cells.get(id), g)));

  document.body.addEventListener("htmx:oobAfterSwap", () => {
    const update = document.getElementById("heatmap-update");
    if (!update || !update.dataset.cells) return;
    const changed = JSON.parse(update.dataset.cells);
    held = { ...held, ...changed.held };
    for (const g of changed.gpus) {
      gpus.set(g[0], g);
      if (!changed.held[g[0]]) delete held[g[0]];
      const cell = cells.get(g[0]);
      if (cell) paint(cell, g);
    }
    update.dataset.cells = "";
    root.dataset.updates = Number(root.dataset.updates || 0) + 1;
  });
})();
