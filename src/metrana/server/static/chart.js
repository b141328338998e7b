// One chart of one metric: uPlot over the downsampled lines of one run or several.
// A line is {label, color, dash, steps, values, times, marks}; the view is
// {x: "step" | "time" | "relative", smoothing: 0..0.99, log: bool}.
import uPlot from "./vendor/uPlot.esm.js";
import { download, el, fmtValue } from "./util.js";

const HEIGHT = 240;

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function ema(values, weight) {
  if (!weight) return values;
  let last = 0;
  let n = 0;
  return values.map((v) => {
    n += 1;
    last = last * weight + (1 - weight) * v;
    return last / (1 - weight ** n);
  });
}

function xsOf(line, view, origin) {
  if (view.x === "time") return line.times.map((t) => t / 1000);
  if (view.x === "relative") return line.times.map((t) => (t - origin) / 1000);
  return line.steps;
}

function ascending(xs) {
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) return false;
  return true;
}

export class MetricChart {
  constructor(metric, lines, view, { onZoom, onReset, annotations = [] } = {}) {
    this.metric = metric;
    this.lines = lines;
    this.view = view;
    this.onZoom = onZoom;
    this.onReset = onReset;
    this.annotations = annotations;
    this.lastText = el("span", { class: "last", "data-testid": "last-values" });
    this.plotBox = el("div", { class: "plot" });
    this.node = el("section", { class: "card", "data-metric": metric },
      el("header", {},
        el("h3", { title: metric }, metric),
        el("span", { class: "actions" },
          el("button", { type: "button", onclick: () => this.csv(), title: "Download the chart's data as CSV" }, "CSV"),
          el("button", { type: "button", onclick: () => this.png(), title: "Download the chart as PNG" }, "PNG"))),
      this.plotBox, this.lastText);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.plotBox);
  }

  width() {
    return Math.max(240, Math.floor(this.plotBox.clientWidth || 480));
  }

  // [xs, ys per line] joined on one x axis (uPlot's format).
  data() {
    const origin = Math.min(...this.lines.map((l) => (l.times.length ? l.times[0] : Infinity)));
    const tables = this.lines.map((line) => {
      let xs = xsOf(line, this.view, origin);
      let ys = ema(line.values, this.view.smoothing);
      if (this.view.log) ys = ys.map((y) => (y > 0 ? y : null));
      if (!ascending(xs)) {
        const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
        xs = order.map((i) => xs[i]);
        ys = order.map((i) => ys[i]);
      }
      return [xs, ys];
    });
    if (!tables.length) return [[]];
    return tables.length === 1 ? tables[0] : uPlot.join(tables);
  }

  render() {
    this.plot?.destroy();
    const time = this.view.x === "time";
    const chart = this;
    const opts = {
      width: this.width(),
      height: HEIGHT,
      scales: { x: { time }, y: { distr: this.view.log ? 3 : 1 } },
      axes: [
        { label: this.view.x === "relative" ? "seconds" : time ? undefined : "step", size: 40 },
        { size: 60, values: (u, splits) => splits.map(fmtValue) },
      ],
      series: [
        { label: this.view.x === "step" ? "step" : "x" },
        ...this.lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          dash: line.dash,
          width: 1.5,
          spanGaps: true,
          points: { show: false },
          value: (u, v) => fmtValue(v),
        })),
      ],
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      hooks: {
        setSelect: [(u) => chart.selected(u)],
        draw: [(u) => { chart.drawMarks(u); chart.expose(u); }],
      },
    };
    this.plot = new uPlot(opts, this.data(), this.plotBox);
    this.plot.over.addEventListener("dblclick", () => this.reset());
    this.node.dataset.series = String(this.lines.length);
    this.showLast();
  }

  showLast() {
    const parts = this.lines.map((l) => {
      const v = l.values.length ? l.values[l.values.length - 1] : null;
      return `${l.label}: ${fmtValue(v)}`;
    });
    this.lastText.textContent = "last: " + parts.join(" · ");
    this.node.dataset.last = JSON.stringify(
      this.lines.map((l) => (l.values.length ? l.values[l.values.length - 1] : null)));
  }

  // New points (live refresh, or the detail of a zoom): keep the zoom unless asked.
  update(lines, keepZoom = false) {
    this.lines = lines;
    if (!this.plot || this.plot.series.length !== lines.length + 1) return this.render();
    const x = this.plot.scales.x;
    this.plot.setData(this.data(), !keepZoom);
    if (keepZoom && x.min !== undefined) this.plot.setScale("x", { min: x.min, max: x.max });
    this.showLast();
  }

  setView(view) {
    this.view = view;
    this.zoomed = null;
    this.render();
  }

  selected(u) {
    if (u.select.width < 4) return;
    const min = u.posToVal(u.select.left, "x");
    const max = u.posToVal(u.select.left + u.select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    u.setScale("x", { min, max });
    this.zoomed = [min, max];
    if (this.onZoom && this.view.x === "step") this.onZoom(this, Math.floor(min), Math.ceil(max));
  }

  reset() {
    this.zoomed = null;
    if (this.onReset) this.onReset(this);
    else this.plot.setData(this.data(), true);
  }

  // Non-finite values (marks) as triangles at the top; annotations as dashed lines.
  drawMarks(u) {
    const ctx = u.ctx;
    const top = u.bbox.top;
    ctx.save();
    for (const line of this.lines) {
      for (const [first] of line.marks || []) {
        const x = this.xOfStep(line, first);
        if (x === null) continue;
        const px = u.valToPos(x, "x", true);
        if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
        ctx.fillStyle = line.color;
        ctx.beginPath();
        ctx.moveTo(px - 5, top);
        ctx.lineTo(px + 5, top);
        ctx.lineTo(px, top + 8);
        ctx.fill();
      }
    }
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "#555";
    this.annotationsDrawn = 0;
    for (const a of this.annotations) {
      const x = this.xOfAnnotation(a);
      if (x === null) continue;
      const px = u.valToPos(x, "x", true);
      if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
      this.annotationsDrawn += 1;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  // What is drawn, for tests and tools: the x range, the y scale and the last drawn value
  // of each series (after smoothing), the annotation markers inside the plot.
  expose(u) {
    const d = this.node.dataset;
    d.xRange = JSON.stringify([u.scales.x.min, u.scales.x.max]);
    d.yDistr = String(u.scales.y.distr);
    d.drawnLast = JSON.stringify(u.data.slice(1).map((ys) => {
      for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null && ys[i] !== undefined) return ys[i];
      return null;
    }));
    d.annotations = String(this.annotationsDrawn || 0);
  }

  // An annotation of a step (a numeric metadata.step: a client may set it, and the migration
  // to schema 3 moved older annotations' steps there) is drawn at that step; otherwise at the
  // time it was made.
  xOfAnnotation(a) {
    const step = a.metadata ? a.metadata.step : undefined;
    if (typeof step === "number" && this.lines[0]) return this.xOfStep(this.lines[0], step);
    return this.xOfTime(a.created_at_ms);
  }

  xOfStep(line, step) {
    if (this.view.x === "step") return step;
    const i = line.steps.findIndex((s) => s >= step);
    if (i < 0) return null;
    return xsOf({ ...line, times: [line.times[i]] }, this.view, this.origin())[0];
  }

  xOfTime(ms) {
    if (this.view.x === "time") return ms / 1000;
    if (this.view.x === "relative") return (ms - this.origin()) / 1000;
    const line = this.lines[0];
    if (!line) return null;
    const i = line.times.findIndex((t) => t >= ms);
    return i < 0 ? null : line.steps[i];
  }

  origin() {
    return Math.min(...this.lines.map((l) => (l.times.length ? l.times[0] : Infinity)));
  }

  resize() {
    if (this.plot && Math.abs(this.plot.width - this.width()) > 2) {
      this.plot.setSize({ width: this.width(), height: HEIGHT });
    }
  }

  csv() {
    const data = this.data();
    const header = [this.view.x, ...this.lines.map((l) => JSON.stringify(l.label))].join(",");
    const rows = data[0].map((x, i) => [x, ...data.slice(1).map((ys) => ys[i] ?? "")].join(","));
    const blob = new Blob([header + "\n" + rows.join("\n") + "\n"], { type: "text/csv" });
    download(`${this.metric.replaceAll("/", "_")}.csv`, URL.createObjectURL(blob));
  }

  png() {
    const source = this.plot.ctx.canvas;
    const canvas = document.createElement("canvas");
    canvas.width = source.width;
    canvas.height = source.height + 30;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#111";
    ctx.font = "16px sans-serif";
    ctx.fillText(this.metric, 8, 20);
    ctx.drawImage(source, 0, 30);
    download(`${this.metric.replaceAll("/", "_")}.png`, canvas.toDataURL("image/png"));
  }

  destroy() {
    this.resizer.disconnect();
    this.plot?.destroy();
  }
}
