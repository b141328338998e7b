// The charts of one run or several: one chart per metric, grouped by the metric name's prefix
// into collapsible sections, refreshed live while a run logs.
import { api, chartSeries } from "./api.js";
import { MetricChart } from "./chart.js";
import { DASHES, PALETTE, el, metadataText } from "./util.js";

const REFRESH_MS = 1000;

function prefixOf(name) {
  const at = name.indexOf("/");
  return at > 0 ? name.slice(0, at) : "metrics";
}

export function chartWidth() {
  return Math.max(400, Math.min(2000, Math.round(window.innerWidth)));
}

export class Board {
  // runs: [{experiment, index}]; compare: one colour per run, else one per series.
  constructor(container, experiments, view, { compare = false, metrics = [] } = {}) {
    this.container = container;
    this.experiments = experiments;
    this.view = view;
    this.compare = compare;
    this.only = metrics;
    this.answers = new Map(); // experiment id -> its chart series
    this.charts = new Map(); // metric -> MetricChart
    this.annotations = new Map();
    this.seen = new Map(); // experiment id -> "last event|status", for the live refresh
  }

  async load() {
    const t0 = performance.now();
    await Promise.all(this.experiments.map(async (e) => {
      const [answer, notes] = await Promise.all([
        chartSeries(e.id, { width: chartWidth(), metrics: this.only }),
        api(`/experiments/${e.id}/annotations`).catch(() => ({ annotations: [] })),
      ]);
      this.answers.set(e.id, answer.series);
      this.annotations.set(e.id, notes.annotations);
      this.seen.set(e.id, `${e.last_event_at_ms}|${e.status}`);
    }));
    this.build();
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    this.container.dataset.drawnMs = String(Math.round(performance.now() - t0));
    this.container.dataset.readyAt = String(Math.round(performance.now())); // since navigation
    this.container.dataset.ready = "true";
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  metricNames() {
    const names = new Set();
    for (const series of this.answers.values()) for (const s of series) names.add(s.metric_name);
    return [...names].sort();
  }

  linesOf(metric, answers = this.answers) {
    const lines = [];
    this.experiments.forEach((e, run) => {
      const series = (answers.get(e.id) || []).filter((s) => s.metric_name === metric);
      series.forEach((s, i) => {
        const meta = metadataText(s.metadata);
        const n = this.compare ? run : lines.length;
        lines.push({
          label: this.compare ? `${e.slug}${meta ? " " + meta : ""}` : meta || "value",
          color: PALETTE[n % PALETTE.length],
          dash: this.compare ? DASHES[i % DASHES.length] : DASHES[Math.floor(n / PALETTE.length) % DASHES.length],
          steps: s.steps,
          values: s.values,
          times: s.times_ms,
          marks: s.marks,
          experiment: e.id,
          metadata: s.metadata,
        });
      });
    });
    return lines;
  }

  build() {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
    const groups = new Map();
    for (const name of this.metricNames()) {
      const prefix = prefixOf(name);
      if (!groups.has(prefix)) groups.set(prefix, []);
      groups.get(prefix).push(name);
    }
    const sections = [];
    const annotations = [...this.annotations.values()].flat();
    for (const [prefix, names] of groups) {
      const grid = el("div", { class: "grid" });
      for (const name of names) {
        const chart = new MetricChart(name, this.linesOf(name), this.view, {
          annotations,
          onZoom: (c, from, to) => this.zoom(c, from, to),
          onReset: (c) => this.unzoom(c),
        });
        this.charts.set(name, chart);
        grid.append(chart.node);
      }
      sections.push(el("details", { open: true, class: "group", "data-group": prefix },
        el("summary", {}, `${prefix} `, el("span", { class: "muted" }, `(${names.length})`)),
        grid));
    }
    if (!sections.length) sections.push(el("p", { class: "muted" }, "No metrics logged yet."));
    this.container.replaceChildren(...sections);
    for (const chart of this.charts.values()) chart.render();
  }

  setView(view) {
    this.view = view;
    for (const chart of this.charts.values()) chart.setView(view);
  }

  // The detail of a zoomed step range, for the chart's metric only.
  async zoom(chart, from, to) {
    const detail = new Map();
    await Promise.all(this.experiments.map(async (e) => {
      const answer = await chartSeries(e.id, {
        width: chartWidth(), fromStep: Math.max(0, from), toStep: to, metrics: [chart.metric],
      });
      detail.set(e.id, answer.series);
    }));
    if (chart.zoomed) chart.update(this.linesOf(chart.metric, detail), true);
  }

  unzoom(chart) {
    chart.update(this.linesOf(chart.metric), false);
  }

  async refresh() {
    if (this.busy) return;
    this.busy = true;
    try {
      let changed = false;
      await Promise.all(this.experiments.map(async (e) => {
        const { experiment } = await api(`/experiments/${e.id}`);
        const mark = `${experiment.last_event_at_ms}|${experiment.status}`;
        if (mark === this.seen.get(e.id) && experiment.status !== "running") return;
        this.seen.set(e.id, mark);
        Object.assign(e, experiment);
        const answer = await chartSeries(e.id, { width: chartWidth(), metrics: this.only });
        this.answers.set(e.id, answer.series);
        changed = true;
      }));
      if (!changed) return;
      this.onStatus?.();
      const names = this.metricNames();
      if (names.length !== this.charts.size || names.some((n) => !this.charts.has(n))) {
        this.build();
        return;
      }
      for (const [name, chart] of this.charts) {
        if (!chart.zoomed) chart.update(this.linesOf(name), false);
      }
    } catch (error) {
      console.warn("live refresh", error);
    } finally {
      this.busy = false;
    }
  }

  stop() {
    clearInterval(this.timer);
  }
}

// The controls of a board's view: x axis, smoothing, log scale.
export function viewControls(view, onChange) {
  const x = el("select", { id: "x-axis", "aria-label": "x axis" },
    ...[["step", "step"], ["time", "wall time"], ["relative", "relative time"]].map(([v, t]) =>
      el("option", { value: v, selected: view.x === v }, t)));
  const smoothing = el("input", {
    id: "smoothing", type: "range", min: "0", max: "0.99", step: "0.01", value: String(view.smoothing),
    "aria-label": "smoothing",
  });
  const shown = el("output", { for: "smoothing" }, view.smoothing.toFixed(2));
  const log = el("input", { id: "log-scale", type: "checkbox", checked: view.log });
  const changed = () => {
    shown.textContent = Number(smoothing.value).toFixed(2);
    onChange({ x: x.value, smoothing: Number(smoothing.value), log: log.checked });
  };
  x.addEventListener("change", changed);
  smoothing.addEventListener("change", changed);
  smoothing.addEventListener("input", () => (shown.textContent = Number(smoothing.value).toFixed(2)));
  log.addEventListener("change", changed);
  return el("div", { class: "toolbar", role: "group", "aria-label": "chart view" },
    el("label", {}, "x axis ", x),
    el("label", {}, "smoothing ", smoothing, shown),
    el("label", {}, log, " log scale"),
    el("span", { class: "muted hint" }, "drag to zoom · double-click to reset"));
}

export function viewFromQuery(params) {
  const x = params.get("x");
  return {
    x: ["step", "time", "relative"].includes(x) ? x : "step",
    smoothing: Math.min(0.99, Math.max(0, Number(params.get("smoothing")) || 0)),
    log: params.get("log") === "1",
  };
}

export function viewToQuery(view, params) {
  params.set("x", view.x);
  params.set("smoothing", String(view.smoothing));
  if (view.log) params.set("log", "1");
  else params.delete("log");
}
