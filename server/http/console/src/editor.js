// The SQL editor (CodeMirror 6: highlighting, completion of keywords,
// tables and columns) and the history of statements run, kept in the
// browser's local storage.

import { autocompletion, closeBrackets, closeCompletion } from "@codemirror/autocomplete";
import { defaultKeymap, history as undoHistory, historyKeymap } from "@codemirror/commands";
import { PostgreSQL, sql } from "@codemirror/lang-sql";
import { bracketMatching, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { Compartment, EditorState } from "@codemirror/state";
import { EditorView, drawSelection, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";

const HISTORY_KEY = "lakehouse.history";
const HISTORY_SIZE = 100;

export class SqlEditor {
  constructor(host, onRun) {
    this.language = new Compartment();
    this.view = new EditorView({
      parent: host,
      state: EditorState.create({
        doc: "",
        extensions: [
          lineNumbers(),
          undoHistory(),
          drawSelection(),
          highlightActiveLine(),
          bracketMatching(),
          closeBrackets(),
          autocompletion({ icons: false }),
          syntaxHighlighting(defaultHighlightStyle),
          placeholder("SELECT … (Ctrl+Enter runs)"),
          this.language.of(sql({ dialect: PostgreSQL })),
          keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }, ...defaultKeymap, ...historyKeymap]),
          EditorView.lineWrapping,
        ],
      }),
    });
  }

  get text() {
    return this.view.state.doc.toString();
  }

  set text(value) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } });
  }

  /** Completes these tables and columns: `{ "schema.table": ["col", ...] }`. */
  setSchema(schema) {
    this.view.dispatch({
      effects: this.language.reconfigure(sql({ dialect: PostgreSQL, schema, upperCaseKeywords: true })),
    });
  }

  focus() {
    this.view.focus();
  }

  /** Closes the completion list (when the statement is sent). */
  settle() {
    closeCompletion(this.view);
  }
}

/** Statements run, newest first. */
export function loadHistory() {
  try {
    const entries = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(entries) ? entries.filter((entry) => typeof entry === "string") : [];
  } catch {
    return [];
  }
}

export function remember(statement) {
  const entries = [statement, ...loadHistory().filter((entry) => entry !== statement)].slice(0, HISTORY_SIZE);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(entries));
  return entries;
}
