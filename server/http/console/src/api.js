// The HTTP API as the console calls it: the bearer token of the session,
// and problem documents (RFC 9457) turned into errors that say what the
// server said.

const TOKEN_KEY = "lakehouse.token";

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const all = { ...extra };
  const bearer = token();
  if (bearer) all.Authorization = `Bearer ${bearer}`;
  return all;
}

/** The error a failed response carries. */
export async function failure(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      const problem = await response.json();
      return new ApiError(response.status, problem.title, problem.detail);
    } catch {
      // Not a problem document after all: fall through to the status.
    }
  }
  return new ApiError(response.status, response.statusText, `HTTP ${response.status} ${response.statusText}`);
}

/** A request with the session's token; throws ApiError on a failure status. */
export async function request(path, { method = "GET", json, body, contentType, signal, auth } = {}) {
  const extra = {};
  if (json !== undefined) extra["Content-Type"] = "application/json";
  if (contentType) extra["Content-Type"] = contentType;
  if (auth) extra.Authorization = auth;
  const response = await fetch(path, {
    method,
    headers: auth ? extra : headers(extra),
    body: json !== undefined ? JSON.stringify(json) : body,
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

/** Logs in with a user and password; keeps the token for the session. */
export async function login(user, password) {
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${password}`)));
  const response = await request("v1/login", { method: "POST", auth: `Basic ${basic}` });
  const answer = await response.json();
  if (answer.token) sessionStorage.setItem(TOKEN_KEY, answer.token);
  return answer;
}

/** Who the session is: the caller, or null when credentials are needed. */
export async function whoami() {
  try {
    return await (await request("v1/login", { method: "POST" })).json();
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

/** Runs SQL answering an Arrow IPC stream (a query) or JSON (a change). */
export function runSql(sql, signal) {
  return request("v1/sql?format=arrow", { method: "POST", json: { sql }, signal });
}

/** Uploads a file with progress; resolves to the ingest answer. */
export function upload(path, file, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers({ "Content-Type": contentType }))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      let answer = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        // Reported below by status.
      }
      if (xhr.status >= 200 && xhr.status < 300 && answer) resolve(answer);
      else reject(new ApiError(xhr.status, answer?.title, answer?.detail || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload did not reach the server"));
    xhr.send(file);
  });
}

/** A SQL string literal. */
export function literal(text) {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A table or column name as SQL reads it, quoted when it must be. */
export function ident(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}
