// A query's result as the console holds it: the Arrow record batches of
// the answer, read as they arrive and kept columnar (a million rows of a
// few columns is tens of megabytes), and a grid that renders one page of
// them at a time.

import { RecordBatchReader, Type } from "apache-arrow";

/** Rows the console keeps of one result; the rest is not fetched. */
export const MAX_ROWS = 1_000_000;
/** Rows on a page of the grid. */
export const PAGE_ROWS = 100;

export class ResultSet {
  constructor(schema, batches, truncated) {
    this.schema = schema;
    this.batches = batches;
    this.truncated = truncated;
    this.starts = [];
    let rows = 0;
    for (const batch of batches) {
      this.starts.push(rows);
      rows += batch.numRows;
    }
    this.rowCount = Math.min(rows, MAX_ROWS);
  }

  get fields() {
    return this.schema.fields;
  }

  /** The value at `row` of column `column`, as Arrow JS gives it. */
  value(row, column) {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid] <= row) low = mid;
      else high = mid - 1;
    }
    return this.batches[low].getChildAt(column)?.get(row - this.starts[low]);
  }
}

/**
 * Reads an Arrow IPC stream response into a ResultSet, at most MAX_ROWS
 * rows; `onProgress(rows)` after each batch. Stops reading (and so the
 * server's query) once it has enough.
 */
export async function readArrow(response, onProgress) {
  const reader = await RecordBatchReader.from(response.body);
  await reader.open();
  // The reader forgets its schema once it has read to the end.
  const { schema } = reader;
  const batches = [];
  let rows = 0;
  let truncated = false;
  for await (const batch of reader) {
    batches.push(batch);
    rows += batch.numRows;
    onProgress(rows);
    if (rows >= MAX_ROWS) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  return new ResultSet(schema, batches, truncated);
}

/** A cell's text. */
export function formatValue(value, type) {
  if (value === null || value === undefined) return null;
  switch (type.typeId) {
    case Type.Timestamp:
      return new Date(Number(value)).toISOString().replace("T", " ").replace("Z", type.timezone ? "Z" : "");
    case Type.Date:
      return new Date(Number(value)).toISOString().slice(0, 10);
    case Type.Decimal:
      return decimalText(value, type.scale);
    case Type.Binary:
    case Type.LargeBinary:
    case Type.FixedSizeBinary:
      return `<${value.length} bytes>`;
    case Type.List:
    case Type.FixedSizeList:
    case Type.LargeList:
      return listText(value);
    case Type.Struct:
    case Type.Map:
      return JSON.stringify(value.toJSON(), (_, v) => (typeof v === "bigint" ? v.toString() : v));
    default:
      return String(value);
  }
}

function listText(list) {
  const items = Array.from(list.toArray ? list.toArray() : list);
  const shown = items.slice(0, 8).map((item) => (typeof item === "number" ? +item.toFixed(4) : String(item)));
  return `[${shown.join(", ")}${items.length > 8 ? `, … ${items.length} items` : ""}]`;
}

function decimalText(value, scale) {
  let digits = BigInt(String(value));
  const negative = digits < 0n;
  if (negative) digits = -digits;
  let text = digits.toString().padStart(scale + 1, "0");
  if (scale > 0) text = `${text.slice(0, -scale)}.${text.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

/** Whether the type reads as a number (charts, right-aligned cells). */
export function isNumeric(type) {
  return [Type.Int, Type.Float, Type.Decimal].includes(type.typeId);
}

export function isTemporal(type) {
  return [Type.Timestamp, Type.Date].includes(type.typeId);
}

/** A paged table of a ResultSet in `host`. */
export class Grid {
  constructor(host) {
    this.host = host;
    this.result = null;
    this.page = 0;
  }

  show(result) {
    this.result = result;
    this.page = 0;
    this.render();
  }

  message(text, kind = "status") {
    this.result = null;
    this.host.replaceChildren(element("p", { className: kind, text }));
  }

  get pages() {
    return Math.max(1, Math.ceil(this.result.rowCount / PAGE_ROWS));
  }

  render() {
    const { result } = this;
    const first = this.page * PAGE_ROWS;
    const last = Math.min(result.rowCount, first + PAGE_ROWS);
    const table = element("table", { className: "grid" });
    const head = table.createTHead().insertRow();
    for (const field of result.fields) {
      const th = element("th", { text: field.name });
      th.title = String(field.type);
      head.append(th);
    }
    const body = table.createTBody();
    for (let row = first; row < last; row += 1) {
      const tr = body.insertRow();
      result.fields.forEach((field, column) => {
        const td = tr.insertCell();
        const text = formatValue(result.value(row, column), field.type);
        if (text === null) {
          td.textContent = "NULL";
          td.className = "null";
        } else {
          td.textContent = text;
          if (isNumeric(field.type)) td.className = "number";
        }
      });
    }
    const count = result.rowCount.toLocaleString("en");
    const summary = result.rowCount === 0
      ? "no rows"
      : `rows ${(first + 1).toLocaleString("en")}–${last.toLocaleString("en")} of ${count}${result.truncated ? " (more not fetched)" : ""}`;
    const pager = element("div", { className: "pager" });
    const previous = element("button", { text: "‹ Previous" });
    const next = element("button", { text: "Next ›" });
    previous.disabled = this.page === 0;
    next.disabled = this.page + 1 >= this.pages;
    previous.onclick = () => this.turn(-1);
    next.onclick = () => this.turn(1);
    pager.append(previous, element("span", { className: "status page-info", text: summary }), next);
    const scroller = element("div", { className: "grid-scroll" });
    scroller.append(table);
    this.host.replaceChildren(pager, scroller);
  }

  turn(by) {
    this.page = Math.min(this.pages - 1, Math.max(0, this.page + by));
    this.render();
  }
}

export function element(tag, { className, text } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
