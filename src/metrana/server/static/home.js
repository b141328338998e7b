// Home: the folder tree and the experiments table (search, filters, sort, compare). Point
// counts and the last values of the metrics chosen (?m=NAME, repeated) come from the
// experiment-summaries extension; each metadata key is a column.
import { api } from "./api.js";
import { duration, el, fmtDuration, fmtTime, fmtValue, metadataText, setCrumbs, statusBadge } from "./util.js";

const FIRST = [["slug", "Experiment"], ["status", "Status"], ["points", "Points"]];
const LAST = [["folder", "Folder"], ["start", "Started"], ["duration", "Duration"], ["last", "Last event"]];
const MAX_META_COLUMNS = 6;

// The value shown for a metric: its series without metadata, else its first one.
function lastOf(summary, name) {
  const values = ((summary && summary.last_values) || []).filter((v) => v.metric_name === name);
  if (!values.length) return null;
  return values.find((v) => !Object.keys(v.metadata).length) || values[0];
}

const shown = (v) => (v === null ? "–" : typeof v.value === "string" ? v.value : fmtValue(v.value));
const numeric = (v) => (v === null || typeof v.value === "string" ? -Infinity : v.value);

function sortValue(e, key, summaries) {
  if (key.startsWith("m:")) return numeric(lastOf(summaries.get(e.id), key.slice(2)));
  if (key.startsWith("k:")) {
    const v = (e.metadata || {})[key.slice(2)];
    return typeof v === "number" ? v : v === undefined ? "" : JSON.stringify(v);
  }
  switch (key) {
    case "points": return summaries.get(e.id)?.points ?? -1;
    case "status": return e.status;
    case "folder": return e.folder ? e.folder.path_name : "";
    case "start": return e.started_at_ms || e.created_at_ms;
    case "duration": return duration(e) ?? -1;
    case "last": return e.last_event_at_ms || 0;
    default: return e.slug;
  }
}

export async function renderHome(main) {
  setCrumbs(el("span", {}, "Experiments"));
  const [{ folders }, { experiments }] = await Promise.all([
    api("/folders"), api("/experiments", { query: { limit: 1000 } }),
  ]);
  const state = { folder: null, search: "", status: "", meta: "", sort: "start", desc: true, chosen: new Set(),
    metrics: new URLSearchParams(location.search).getAll("m") };
  let summaries = new Map();
  const metaKeys = [...new Set(experiments.flatMap((e) => Object.keys(e.metadata || {})))].sort().slice(0, MAX_META_COLUMNS);
  const columns = () => [...FIRST, ...state.metrics.map((m) => [`m:${m}`, m]), ...metaKeys.map((k) => [`k:${k}`, k]), ...LAST];
  const loadSummaries = async () => {
    const { summaries: found } = await api("/experiment-summaries", { query: { metric_name: state.metrics } });
    summaries = new Map(found.map((s) => [s.experiment_id, s]));
  };
  await loadSummaries();

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
  const metrics = el("input", { type: "search", placeholder: "last values of: loss, acc", "aria-label": "Metrics whose last values to show",
    value: state.metrics.join(", "), onchange: async (ev) => {
      state.metrics = ev.target.value.split(",").map((m) => m.trim()).filter(Boolean).slice(0, 20);
      const params = new URLSearchParams();
      for (const m of state.metrics) params.append("m", m);
      history.replaceState(null, "", params.toString() ? "/?" + params : "/");
      await loadSummaries();
      renderTable();
    } });
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
    const x = sortValue(a, state.sort, summaries);
    const y = sortValue(b, state.sort, summaries);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return state.desc ? -order : order;
  });

  const renderTable = () => {
    const rows = visible();
    count.textContent = `${rows.length} of ${experiments.length}`;
    compare.disabled = state.chosen.size < 2;
    const head = el("tr", {}, el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Select")),
      columns().map(([key, title]) => el("th", { scope: "col", "data-col": key, "aria-sort": state.sort === key ? (state.desc ? "descending" : "ascending") : "none" },
        el("button", { type: "button", class: "sort", onclick: () => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; renderTable(); } },
          title, state.sort === key ? (state.desc ? " ▼" : " ▲") : ""))));
    const body = rows.map((e) => {
      const box = el("input", { type: "checkbox", "aria-label": `select ${e.slug}`, checked: state.chosen.has(e.id),
        onchange: (ev) => { if (ev.target.checked) state.chosen.add(e.id); else state.chosen.delete(e.id); compare.disabled = state.chosen.size < 2; } });
      return el("tr", { tabindex: "0", "data-id": e.id, onkeydown: (ev) => rowKey(ev, e, box) },
        el("td", {}, box),
        el("td", {}, el("a", { href: `/experiments/${e.id}` }, e.slug)),
        el("td", {}, statusBadge(e.status)),
        el("td", { class: "num", "data-col": "points" }, summaries.get(e.id)?.points.toLocaleString("en-US") ?? "–"),
        state.metrics.map((m) => {
          const all = (summaries.get(e.id)?.last_values || []).filter((v) => v.metric_name === m);
          const title = all.map((v) => `${metadataText(v.metadata) || m} @ step ${v.step}: ${v.value}`).join("\n");
          return el("td", { class: "num", "data-col": `m:${m}`, title: title || null }, shown(lastOf(summaries.get(e.id), m)));
        }),
        metaKeys.map((k) => el("td", { class: "meta", "data-col": `k:${k}` },
          k in (e.metadata || {}) ? (typeof e.metadata[k] === "string" ? e.metadata[k] : JSON.stringify(e.metadata[k])) : "–")),
        el("td", { "data-col": "folder" }, e.folder ? e.folder.path_name : "–"),
        el("td", { "data-col": "start" }, fmtTime(e.started_at_ms || e.created_at_ms)),
        el("td", { "data-col": "duration" }, fmtDuration(duration(e))),
        el("td", { "data-col": "last" }, fmtTime(e.last_event_at_ms)));
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
      el("div", { class: "toolbar" }, search, status, meta, metrics, compare, count),
      el("div", { class: "scroll" }, table),
      el("p", { class: "muted hint" }, "Keyboard: ↑/↓ move between rows, Enter opens, Space selects."))));
}
