// Home: the folder tree and the experiments table (search, filters, sort, compare).
import { api } from "./api.js";
import { duration, el, fmtDuration, fmtTime, metadataText, setCrumbs, statusBadge } from "./util.js";

const COLUMNS = [
  ["slug", "Experiment"], ["status", "Status"], ["folder", "Folder"], ["start", "Started"],
  ["duration", "Duration"], ["last", "Last event"], ["metadata", "Metadata"],
];

function sortValue(e, key) {
  switch (key) {
    case "status": return e.status;
    case "folder": return e.folder ? e.folder.path_name : "";
    case "start": return e.started_at_ms || e.created_at_ms;
    case "duration": return duration(e) ?? -1;
    case "last": return e.last_event_at_ms || 0;
    case "metadata": return metadataText(e.metadata);
    default: return e.slug;
  }
}

export async function renderHome(main) {
  setCrumbs(el("span", {}, "Experiments"));
  const [{ folders }, { experiments }] = await Promise.all([
    api("/folders"), api("/experiments", { query: { limit: 1000 } }),
  ]);
  const state = { folder: null, search: "", status: "", meta: "", sort: "start", desc: true, chosen: new Set() };

  const tree = el("nav", { class: "tree", "aria-label": "Folders" });
  const renderTree = () => {
    const children = new Map();
    for (const f of folders) {
      const parent = f.parent_id_path.length ? f.parent_id_path[f.parent_id_path.length - 1] : "";
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(f);
    }
    const branch = (parent) => {
      const items = (children.get(parent) || []).sort((a, b) => a.name.localeCompare(b.name));
      if (!items.length) return null;
      return el("ul", {}, items.map((f) => el("li", {},
        el("button", {
          type: "button", class: state.folder === f.folder_id ? "current" : "",
          "aria-pressed": String(state.folder === f.folder_id),
          onclick: () => { state.folder = state.folder === f.folder_id ? null : f.folder_id; renderTree(); renderTable(); },
        }, f.name), branch(f.folder_id))));
    };
    tree.replaceChildren(el("h2", {}, "Folders"),
      el("button", { type: "button", class: state.folder ? "" : "current", onclick: () => { state.folder = null; renderTree(); renderTable(); } }, "All experiments"),
      branch("") || el("p", { class: "muted" }, "No folders yet."));
  };

  const search = el("input", { type: "search", placeholder: "Search name or description", "aria-label": "Search", oninput: (ev) => { state.search = ev.target.value.toLowerCase(); renderTable(); } });
  const status = el("select", { "aria-label": "Status", onchange: (ev) => { state.status = ev.target.value; renderTable(); } },
    ...["", "running", "done", "error", "created"].map((s) => el("option", { value: s }, s || "any status")));
  const meta = el("input", { type: "search", placeholder: "metadata key=value", "aria-label": "Filter by metadata", oninput: (ev) => { state.meta = ev.target.value; renderTable(); } });
  const compare = el("button", { type: "button", class: "primary", disabled: true, onclick: () => {
    const params = new URLSearchParams();
    for (const id of state.chosen) params.append("e", id);
    location.href = "/compare?" + params;
  } }, "Compare selected");
  const table = el("table", { class: "experiments" });
  const count = el("span", { class: "muted" });

  const visible = () => experiments.filter((e) => {
    if (state.folder && !(e.folder && (e.folder.folder_id === state.folder || e.folder.parent_id_path.includes(state.folder)))) return false;
    if (state.status && e.status !== state.status) return false;
    if (state.search && !`${e.slug} ${e.description}`.toLowerCase().includes(state.search)) return false;
    if (state.meta) {
      const [key, value] = state.meta.split("=", 2).map((s) => s.trim());
      if (!(key in (e.metadata || {}))) return false;
      if (value !== undefined && String(e.metadata[key]) !== value) return false;
    }
    return true;
  }).sort((a, b) => {
    const x = sortValue(a, state.sort);
    const y = sortValue(b, state.sort);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return state.desc ? -order : order;
  });

  const renderTable = () => {
    const rows = visible();
    count.textContent = `${rows.length} of ${experiments.length}`;
    compare.disabled = state.chosen.size < 2;
    const head = el("tr", {}, el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Select")),
      COLUMNS.map(([key, title]) => el("th", { scope: "col", "aria-sort": state.sort === key ? (state.desc ? "descending" : "ascending") : "none" },
        el("button", { type: "button", class: "sort", onclick: () => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; renderTable(); } },
          title, state.sort === key ? (state.desc ? " ▼" : " ▲") : ""))));
    const body = rows.map((e) => {
      const box = el("input", { type: "checkbox", "aria-label": `select ${e.slug}`, checked: state.chosen.has(e.id),
        onchange: (ev) => { if (ev.target.checked) state.chosen.add(e.id); else state.chosen.delete(e.id); compare.disabled = state.chosen.size < 2; } });
      return el("tr", { tabindex: "0", "data-id": e.id, onkeydown: (ev) => rowKey(ev, e, box) },
        el("td", {}, box),
        el("td", {}, el("a", { href: `/experiments/${e.id}` }, e.slug)),
        el("td", {}, statusBadge(e.status)),
        el("td", {}, e.folder ? e.folder.path_name : "–"),
        el("td", {}, fmtTime(e.started_at_ms || e.created_at_ms)),
        el("td", {}, fmtDuration(duration(e))),
        el("td", {}, fmtTime(e.last_event_at_ms)),
        el("td", { class: "meta" }, metadataText(e.metadata)));
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  };

  const rowKey = (ev, e, box) => {
    const row = ev.currentTarget;
    if (ev.key === "ArrowDown") { row.nextElementSibling?.focus(); ev.preventDefault(); }
    else if (ev.key === "ArrowUp") { row.previousElementSibling?.focus(); ev.preventDefault(); }
    else if (ev.key === "Enter" && ev.target === row) location.href = `/experiments/${e.id}`;
    else if (ev.key === " " && ev.target === row) { box.click(); ev.preventDefault(); }
  };

  renderTree();
  renderTable();
  main.replaceChildren(el("div", { class: "home" }, tree,
    el("section", { class: "list" },
      el("h1", {}, "Experiments"),
      el("div", { class: "toolbar" }, search, status, meta, compare, count),
      el("div", { class: "scroll" }, table),
      el("p", { class: "muted hint" }, "Keyboard: ↑/↓ move between rows, Enter opens, Space selects."))));
}
