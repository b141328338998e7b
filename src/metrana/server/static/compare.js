// Compare view: several runs overlaid per metric, one colour per run; the URL holds the view
// (?e=ID&e=ID&m=METRIC&x=step&smoothing=0.6&log=1), so it can be shared.
import { api } from "./api.js";
import { Board, viewControls, viewFromQuery, viewToQuery } from "./board.js";
import { PALETTE, el, setCrumbs, statusBadge } from "./util.js";

export async function renderCompare(main) {
  const params = new URLSearchParams(location.search);
  const ids = params.getAll("e");
  setCrumbs(el("a", { href: "/" }, "Experiments"), el("span", {}, "Compare"));
  if (!ids.length) {
    main.replaceChildren(el("p", {}, "Choose experiments to compare on the ", el("a", { href: "/" }, "home page"), "."));
    return;
  }
  const experiments = await Promise.all(ids.map(async (id) => (await api(`/experiments/${encodeURIComponent(id)}`)).experiment));
  const view = viewFromQuery(params);
  const charts = el("div", { id: "charts" });
  const board = new Board(charts, experiments, view, { compare: true, metrics: params.getAll("m") });
  const controls = viewControls(view, (next) => {
    viewToQuery(next, params);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    board.setView(next);
  });
  const runs = el("ul", { class: "runs" }, experiments.map((e, i) => el("li", {},
    el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }),
    el("a", { href: `/experiments/${e.id}` }, e.slug), " ", statusBadge(e.status))));
  main.replaceChildren(el("h1", {}, `Compare ${experiments.length} runs`), runs, controls,
    el("p", { class: "muted hint" }, "Click a legend entry to hide or show its series."), charts);
  await board.load();
}
