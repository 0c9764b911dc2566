// The semantic search box: a text, embedded by the server's model, and
// the k rows of a chosen vector table nearest to it, through knn() as SQL
// writes it.

import { getJson, ident, literal, runSql } from "./api.js";
import { qualified } from "./catalog.js";
import { readArrow } from "./results.js";

export class Search {
  constructor({ form, table, column, text, k, status, grid }) {
    Object.assign(this, { form, table, column, text, k, status, grid });
    this.columns = new Map();
    this.tables = [];
    table.onchange = () => this.chooseTable();
    form.onsubmit = (event) => {
      event.preventDefault();
      this.run();
    };
  }

  /** Offers the vector tables of the catalog. */
  offer(tables) {
    const chosen = this.table.value;
    this.tables = tables.filter((table) => table.kind === "lance");
    this.table.replaceChildren(
      ...this.tables.map((table) => {
        const node = document.createElement("option");
        node.value = `${table.schema}.${table.name}`;
        node.textContent = node.value;
        return node;
      }),
    );
    if (this.tables.some((table) => `${table.schema}.${table.name}` === chosen)) this.table.value = chosen;
    this.status.textContent = this.tables.length ? "" : "No vector tables yet: load rows with a vector column (or use /v1/vectors/index/{name}/add).";
    return this.chooseTable();
  }

  async chooseTable() {
    const name = this.table.value;
    if (!name) {
      this.column.replaceChildren();
      return;
    }
    const detail = await getJson(`v1/tables/${encodeURIComponent(name)}`);
    this.columns.set(name, detail.columns);
    const vectors = detail.columns.filter((column) => isVector(column.type));
    this.column.replaceChildren(
      ...vectors.map((column) => {
        const node = document.createElement("option");
        node.value = column.name;
        node.textContent = column.name;
        return node;
      }),
    );
  }

  async run() {
    const table = this.tables.find((entry) => `${entry.schema}.${entry.name}` === this.table.value);
    const vector = this.column.value;
    if (!table || !vector) return;
    const shown = (this.columns.get(this.table.value) ?? [])
      .filter((column) => !isVector(column.type))
      .map((column) => ident(column.name));
    const k = Math.max(1, Math.min(1000, Number(this.k.value) || 10));
    const sql = `SELECT ${["_distance", ...shown].join(", ")} FROM knn(${literal(qualified(table))}, ${literal(vector)}, ${literal(this.text.value)}, ${k}) ORDER BY _distance`;
    this.status.textContent = "Searching…";
    const started = performance.now();
    try {
      const result = await readArrow(await runSql(sql), () => {});
      this.status.textContent = `${result.rowCount} nearest rows in ${Math.round(performance.now() - started)} ms`;
      this.grid.show(result);
    } catch (error) {
      this.status.textContent = "";
      this.grid.message(error.message, "error");
    }
  }
}

function isVector(dataType) {
  return /^FixedSizeList\(/.test(dataType);
}
