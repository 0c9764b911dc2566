// The catalog browser: tables and views by schema, and one table's
// columns and versions, each version a time-travel query away.

import { getJson, ident, request } from "./api.js";
import { element } from "./results.js";

export class Catalog {
  constructor({ list, filter, onOpen }) {
    this.list = list;
    this.filter = filter;
    this.onOpen = onOpen;
    this.tables = [];
    filter.oninput = () => this.render();
  }

  async load() {
    this.tables = (await getJson("v1/tables")).tables;
    this.render();
    return this.tables;
  }

  render() {
    const needle = this.filter.value.trim().toLowerCase();
    const schemas = new Map();
    for (const table of this.tables) {
      if (needle && !`${table.schema}.${table.name}`.toLowerCase().includes(needle)) continue;
      if (!schemas.has(table.schema)) schemas.set(table.schema, []);
      schemas.get(table.schema).push(table);
    }
    const items = [];
    for (const [schema, tables] of schemas) {
      const group = element("li", { className: "schema" });
      group.append(element("span", { className: "schema-name", text: schema }));
      const inner = element("ul");
      for (const table of tables) {
        const item = element("li");
        const button = element("button", { className: "table-link" });
        button.dataset.table = `${table.schema}.${table.name}`;
        button.append(
          element("span", { text: table.name }),
          element("span", { className: `badge ${table.kind ?? "view"}`, text: table.kind === "lance" ? "vector" : table.kind ?? "view" }),
        );
        button.title = table.rows === null || table.rows === undefined
          ? `${table.type}, version ${table.version}`
          : `${table.rows.toLocaleString("en")} rows, version ${table.version}`;
        button.onclick = () => this.onOpen(table);
        item.append(button);
        inner.append(item);
      }
      group.append(inner);
      items.push(group);
    }
    if (items.length === 0) items.push(element("li", { className: "status", text: this.tables.length ? "No table matches." : "No tables yet: upload a file or CREATE TABLE." }));
    this.list.replaceChildren(...items);
  }

  /** `{ "schema.table": [columns] }` for the editor's completion: every
   * table's and view's columns in one query of information_schema. */
  async completionSchema() {
    const response = await request("v1/sql", {
      method: "POST",
      json: {
        sql: "SELECT table_schema, table_name, column_name FROM information_schema.columns "
          + "WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name, ordinal_position",
      },
    });
    const schema = {};
    for (const row of (await response.json()).rows) {
      const name = `${row.table_schema}.${row.table_name}`;
      (schema[name] ??= []).push(row.column_name);
    }
    return schema;
  }
}

/** A table's qualified name as SQL reads it. */
export function qualified(table) {
  return `${ident(table.schema)}.${ident(table.name)}`;
}

/** Shows a table's columns and versions; `onQuery(sql)` runs a query. */
export async function showTable(elements, table, onQuery) {
  const name = `${table.schema}.${table.name}`;
  if (table.type === "VIEW") {
    elements.title.textContent = name;
    elements.summary.textContent = "A view: the query it stands for runs each time it is read.";
    elements.columns.replaceChildren();
    elements.versions.replaceChildren();
    elements.preview.onclick = () => onQuery(`SELECT * FROM ${qualified(table)} LIMIT 1000`);
    return;
  }
  const path = encodeURIComponent(name);
  const [detail, history] = await Promise.all([getJson(`v1/tables/${path}`), getJson(`v1/tables/${path}/versions`)]);
  elements.title.textContent = name;
  elements.summary.textContent = `${detail.kind === "lance" ? "Vector table" : "Parquet table"} · ${detail.rows.toLocaleString("en")} rows · ${bytes(detail.bytes)} · version ${detail.version} of ${detail.versions} kept · updated ${detail.updated_at}`;
  elements.preview.onclick = () => onQuery(`SELECT * FROM ${qualified(table)} LIMIT 1000`);
  elements.columns.replaceChildren(
    row("th", ["column", "type", "nullable", "nulls", "default"]),
    ...detail.columns.map((column) =>
      row("td", [column.name, column.type, column.nullable ? "yes" : "no", column.null_count ?? "", column.default ?? ""]),
    ),
  );
  const versions = [...history.versions].reverse();
  elements.versions.replaceChildren(
    row("th", ["version", "committed", "operation", "rows added", "rows removed", "total rows", "by", ""]),
    ...versions.map((version) => {
      const tr = row("td", [
        version.version,
        version.committed_at,
        version.operation,
        version.rows_added.toLocaleString("en"),
        version.rows_removed.toLocaleString("en"),
        version.total_rows.toLocaleString("en"),
        version.committed_by ?? "",
      ]);
      const button = element("button", { text: "Query this version" });
      button.dataset.version = version.version;
      button.onclick = () => onQuery(`SELECT * FROM ${qualified(table)} VERSION AS OF ${version.version} LIMIT 1000`);
      const cell = tr.insertCell();
      if (version.operation !== "drop") cell.append(button);
      return tr;
    }),
  );
}

function row(cellTag, values) {
  const tr = document.createElement("tr");
  for (const value of values) tr.append(element(cellTag, { text: String(value) }));
  return tr;
}

export function bytes(count) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}
