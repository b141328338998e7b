// Small helpers shared by the pages.

// Okabe–Ito: eight colours that colour-blind readers tell apart.
export const PALETTE = [
  "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];
export const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3]];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function fmtValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

export function duration(e) {
  const start = e.started_at_ms || e.created_at_ms;
  const end = e.done_at_ms || (e.status === "running" ? Date.now() : e.last_event_at_ms);
  return end ? end - start : null;
}

export function statusBadge(status) {
  return el("span", { class: `status status-${status}` },
    el("span", { class: "dot", "aria-hidden": "true" }), status);
}

export function metadataText(metadata) {
  const keys = Object.keys(metadata || {});
  return keys.length ? keys.map((k) => `${k}=${JSON.stringify(metadata[k])}`).join(" ") : "";
}

export function download(name, href) {
  const link = el("a", { href, download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

export function setCrumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
}
