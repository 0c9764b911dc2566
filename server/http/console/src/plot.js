// A chart of a result (Chart.js): bar, line or scatter of one column
// against another, chosen from the result's columns.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Tooltip,
} from "chart.js";
import { formatValue, isNumeric, isTemporal } from "./results.js";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Tooltip,
);

/** Points a chart draws at most; more would not be readable. */
export const MAX_POINTS = 5_000;

export class Plot {
  constructor({ canvas, kind, x, y, note }) {
    this.canvas = canvas;
    this.controls = { kind, x, y };
    this.note = note;
    this.chart = null;
    this.result = null;
    for (const control of [kind, x, y]) control.onchange = () => this.draw();
  }

  /** Offers the result's columns and draws a first chart of it. */
  show(result) {
    this.result = result;
    const fields = result.fields;
    const numeric = fields.map((field, index) => [field, index]).filter(([field]) => isNumeric(field.type));
    const { x, y } = this.controls;
    x.replaceChildren(...fields.map((field, index) => option(field.name, index)));
    y.replaceChildren(...numeric.map(([field, index]) => option(field.name, index)));
    const firstOther = fields.findIndex((field) => !isNumeric(field.type));
    x.value = String(firstOther >= 0 ? firstOther : 0);
    // Measures usually come last (`SELECT city, sum(km) ...`).
    const lastY = numeric.findLast(([, index]) => String(index) !== x.value) ?? numeric.at(-1);
    if (lastY) y.value = String(lastY[1]);
  }

  /** Forgets the result (a new query is running). */
  clear() {
    this.result = null;
    this.chart?.destroy();
    this.chart = null;
  }

  draw() {
    this.chart?.destroy();
    this.chart = null;
    const { result } = this;
    if (!result) return;
    const { kind, x, y } = this.controls;
    if (y.options.length === 0) {
      this.note.textContent = "No numeric column to chart.";
      return;
    }
    const xIndex = Number(x.value);
    const yIndex = Number(y.value);
    const xField = result.fields[xIndex];
    const yField = result.fields[yIndex];
    const count = Math.min(result.rowCount, MAX_POINTS);
    const numericX = kind.value !== "bar" && (isNumeric(xField.type) || isTemporal(xField.type));
    const labels = [];
    const values = [];
    for (let row = 0; row < count; row += 1) {
      const xValue = result.value(row, xIndex);
      const yValue = result.value(row, yIndex);
      if (yValue === null || yValue === undefined) continue;
      if (numericX) {
        if (xValue === null || xValue === undefined) continue;
        values.push({ x: Number(xValue), y: Number(yValue) });
      } else {
        labels.push(formatValue(xValue, xField.type) ?? "NULL");
        values.push(Number(yValue));
      }
    }
    this.note.textContent = result.rowCount > MAX_POINTS
      ? `The first ${MAX_POINTS.toLocaleString("en")} of ${result.rowCount.toLocaleString("en")} rows.`
      : "";
    const xScale = numericX
      ? { type: "linear", title: { display: true, text: xField.name }, ticks: isTemporal(xField.type) ? { callback: (v) => new Date(v).toISOString().slice(0, 10) } : {} }
      : { type: "category", title: { display: true, text: xField.name } };
    this.chart = new Chart(this.canvas, {
      type: kind.value,
      data: {
        labels: numericX ? undefined : labels,
        datasets: [{ label: yField.name, data: values, backgroundColor: "#3b6ea5", borderColor: "#3b6ea5", pointRadius: 2 }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: numericX ? false : undefined,
        scales: { x: xScale, y: { type: "linear", title: { display: true, text: yField.name } } },
      },
    });
  }
}

function option(text, value) {
  const node = document.createElement("option");
  node.textContent = text;
  node.value = String(value);
  return node;
}
