// CSV (and NDJSON, Arrow IPC, Parquet) upload into a table, with the
// bytes sent shown on a progress bar, through POST /v1/ingest/{table}.

import { upload } from "./api.js";
import { bytes } from "./catalog.js";

const CONTENT_TYPES = {
  csv: "text/csv",
  tsv: "text/csv",
  ndjson: "application/x-ndjson",
  jsonl: "application/x-ndjson",
  arrow: "application/vnd.apache.arrow.stream",
  arrows: "application/vnd.apache.arrow.stream",
  parquet: "application/vnd.apache.parquet",
};

export class Upload {
  constructor({ form, file, table, mode, header, evolve, progress, status, onLoaded }) {
    Object.assign(this, { form, file, table, mode, header, evolve, progress, status, onLoaded });
    file.onchange = () => {
      const chosen = file.files[0];
      if (chosen && !table.value) table.value = tableName(chosen.name);
    };
    form.onsubmit = (event) => {
      event.preventDefault();
      this.send();
    };
  }

  async send() {
    const chosen = this.file.files[0];
    if (!chosen) return;
    const extension = chosen.name.split(".").pop().toLowerCase();
    const contentType = CONTENT_TYPES[extension] ?? "text/csv";
    const query = new URLSearchParams({ mode: this.mode.value });
    if (extension === "tsv") query.set("delimiter", "\t");
    if (!this.header.checked) query.set("header", "false");
    if (this.evolve.checked) query.set("evolve", "true");
    this.progress.hidden = false;
    this.progress.value = 0;
    this.progress.max = chosen.size || 1;
    this.status.className = "status";
    this.status.textContent = `Sending ${bytes(chosen.size)}…`;
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await upload(
        `v1/ingest/${encodeURIComponent(this.table.value)}?${query}`,
        chosen,
        contentType,
        (sent, total) => {
          this.progress.max = total;
          this.progress.value = sent;
          this.status.textContent = sent < total ? `Sent ${bytes(sent)} of ${bytes(total)}…` : "Sent; committing…";
        },
      );
      this.progress.value = this.progress.max;
      this.status.textContent = answer.deduplicated
        ? `Already loaded as version ${answer.version} of ${answer.table}.`
        : `Loaded ${answer.rows.toLocaleString("en")} rows into ${answer.table} (version ${answer.version}) in ${Math.round(answer.elapsed_ms)} ms.`;
      this.onLoaded(answer);
    } catch (error) {
      this.status.className = "error";
      this.status.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }
}

/** A table name from a file name: `Sales 2026.csv` -> `sales_2026`. */
export function tableName(fileName) {
  const stem = fileName.replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "");
  return /^[a-z_]/.test(stem) ? stem : `t_${stem}`;
}
