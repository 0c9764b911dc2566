// The console's entry: log in when the server asks for credentials, then
// wire the editor, results, chart, catalog, search and upload together.

import { forgetToken, login, runSql, whoami } from "./api.js";
import { Catalog, showTable } from "./catalog.js";
import { SqlEditor, loadHistory, remember } from "./editor.js";
import { Plot } from "./plot.js";
import { Grid, readArrow } from "./results.js";
import { Search } from "./search.js";
import { Upload } from "./upload.js";

const $ = (id) => document.getElementById(id);

const plural = (count, noun) => `${count.toLocaleString("en")} ${noun}${count === 1 ? "" : "s"}`;

function selectTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
}

function showHistory(entries) {
  const select = $("history");
  const options = entries.map((statement) => {
    const node = document.createElement("option");
    node.value = statement;
    node.textContent = statement.replace(/\s+/g, " ").slice(0, 80);
    return node;
  });
  const title = document.createElement("option");
  title.value = "";
  title.textContent = entries.length ? `History (${entries.length})` : "History";
  select.replaceChildren(title, ...options);
}

async function start(who) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `${who.user} (${who.role})`;
  $("logout").hidden = !who.token;

  const grid = new Grid($("query-grid"));
  const plot = new Plot({ canvas: $("chart-canvas"), kind: $("chart-kind"), x: $("chart-x"), y: $("chart-y"), note: $("chart-note") });
  let view = "grid";
  let running = null;

  const setView = (next) => {
    view = next;
    for (const button of document.querySelectorAll("[data-view]")) button.setAttribute("aria-pressed", String(button.dataset.view === next));
    $("query-grid").hidden = next !== "grid";
    $("query-chart").hidden = next !== "chart";
    if (next === "chart") plot.draw();
  };
  for (const button of document.querySelectorAll("[data-view]")) button.onclick = () => setView(button.dataset.view);

  const run = async () => {
    const statement = editor.text.trim();
    if (!statement || running) return;
    editor.settle();
    showHistory(remember(statement));
    const status = $("query-status");
    running = new AbortController();
    $("cancel").hidden = false;
    $("run").disabled = true;
    status.className = "status";
    status.textContent = "Running…";
    grid.message("Running…");
    plot.clear();
    const started = performance.now();
    try {
      const response = await runSql(statement, running.signal);
      if ((response.headers.get("Content-Type") || "").includes("json")) {
        const answer = await response.json();
        grid.message(`${plural(answer.rows_affected, "row")} affected.`);
        status.textContent = `Done in ${Math.round(performance.now() - started)} ms`;
        await refreshCatalog();
        return;
      }
      const result = await readArrow(response, (rows) => {
        status.textContent = `Running… ${rows.toLocaleString("en")} rows`;
      });
      status.textContent = `${plural(result.rowCount, "row")} in ${Math.round(performance.now() - started)} ms`;
      grid.show(result);
      plot.show(result);
      if (view === "chart") plot.draw();
    } catch (error) {
      if (error.name === "AbortError") {
        status.textContent = "Cancelled.";
      } else {
        status.textContent = "";
        grid.message(error.message, "error");
      }
    } finally {
      running = null;
      $("cancel").hidden = true;
      $("run").disabled = false;
    }
  };

  const editor = new SqlEditor($("editor"), run);
  const query = (statement) => {
    editor.text = statement;
    selectTab("query");
    run();
  };
  $("run").onclick = run;
  $("cancel").onclick = () => running?.abort();
  showHistory(loadHistory());
  $("history").onchange = (event) => {
    if (event.target.value) editor.text = event.target.value;
    event.target.value = "";
    editor.focus();
  };

  const tableElements = {
    title: $("table-title"),
    summary: $("table-summary"),
    columns: $("table-columns"),
    versions: $("table-versions"),
    preview: $("table-preview"),
  };
  const catalog = new Catalog({
    list: $("catalog-list"),
    filter: $("catalog-filter"),
    onOpen: async (table) => {
      selectTab("table");
      $("table-empty").hidden = true;
      $("table-detail").hidden = false;
      try {
        await showTable(tableElements, table, query);
      } catch (error) {
        tableElements.summary.textContent = error.message;
      }
    },
  });
  const search = new Search({
    form: $("search-form"),
    table: $("search-table"),
    column: $("search-column"),
    text: $("search-text"),
    k: $("search-k"),
    status: $("search-status"),
    grid: new Grid($("search-grid")),
  });
  new Upload({
    form: $("upload-form"),
    file: $("upload-file"),
    table: $("upload-table"),
    mode: $("upload-mode"),
    header: $("upload-header"),
    evolve: $("upload-evolve"),
    progress: $("upload-progress"),
    status: $("upload-status"),
    onLoaded: () => refreshCatalog(),
  });

  async function refreshCatalog() {
    try {
      const tables = await catalog.load();
      await search.offer(tables);
      editor.setSchema(await catalog.completionSchema());
    } catch (error) {
      $("catalog-list").textContent = error.message;
    }
  }
  $("catalog-refresh").onclick = refreshCatalog;
  for (const tab of document.querySelectorAll("[role=tab]")) tab.onclick = () => selectTab(tab.dataset.tab);
  await refreshCatalog();
  editor.focus();
}

function askLogin() {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    $("login-error").textContent = "";
    try {
      await login(form.get("user"), form.get("password"));
      location.reload();
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  };
}

$("logout").onclick = () => {
  forgetToken();
  location.reload();
};

whoami()
  .then((who) => (who ? start(who) : askLogin()))
  .catch((error) => {
    document.body.textContent = `The console could not reach the server: ${error.message}`;
  });
