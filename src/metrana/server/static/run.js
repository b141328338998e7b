// Run page: one chart per metric, the run's status and metadata, live refresh.
import { api } from "./api.js";
import { Board, viewControls, viewFromQuery, viewToQuery } from "./board.js";
import { duration, el, fmtDuration, fmtTime, setCrumbs, statusBadge } from "./util.js";

export async function renderRun(main, id) {
  const params = new URLSearchParams(location.search);
  const { experiment } = await api(`/experiments/${encodeURIComponent(id)}`);
  document.title = `${experiment.slug} · Metrana`;
  setCrumbs(el("a", { href: "/" }, "Experiments"),
    ...(experiment.folder ? [el("span", {}, experiment.folder.path_name)] : []),
    el("span", {}, experiment.slug));
  const info = el("dl", { class: "info" });
  const showInfo = () => {
    const meta = Object.entries(experiment.metadata || {});
    info.replaceChildren(
      el("dt", {}, "Status"), el("dd", { "data-testid": "status" }, statusBadge(experiment.status)),
      el("dt", {}, "Started"), el("dd", {}, fmtTime(experiment.started_at_ms || experiment.created_at_ms)),
      el("dt", {}, "Duration"), el("dd", {}, fmtDuration(duration(experiment))),
      el("dt", {}, "Last event"), el("dd", {}, fmtTime(experiment.last_event_at_ms)),
      ...(experiment.error_name ? [el("dt", {}, "Error"), el("dd", {}, `${experiment.error_name}: ${experiment.error_detail || ""}`)] : []),
      ...meta.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]));
  };
  showInfo();
  const charts = el("div", { id: "charts", "aria-live": "off" });
  const view = viewFromQuery(params);
  const board = new Board(charts, [experiment], view);
  board.onStatus = showInfo;
  const controls = viewControls(view, (next) => {
    viewToQuery(next, params);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    board.setView(next);
  });
  main.replaceChildren(
    el("div", { class: "run-head" }, el("h1", {}, experiment.slug),
      experiment.description ? el("p", {}, experiment.description) : null),
    el("details", { class: "about", open: true }, el("summary", {}, "Run"), info),
    controls, charts);
  await board.load();
}
