// The node's API as the page calls it: the token (from the URL's fragment, kept in this tab's
// session storage, sent as the bearer header, never in a query string or a cookie), JSON
// calls, NDJSON streams (submit, provide) and the live feed (Server-Sent Events read with
// fetch, since EventSource cannot send a header).

const TOKEN_KEY = "cue-token";

/** An error the node answered (`{"error": {"kind", "message"}}`), or a failed connection. */
export class ApiError extends Error {
  constructor(status, kind, message, detail) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.detail = detail || null;
  }
}

/** Takes `#token=…` from the address (then removes it from the address bar); the token kept. */
export function takeToken() {
  const match = location.hash.match(/(?:^#|&)token=([0-9a-fA-F]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, "", location.pathname + "#/overview");
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Forgets the token (it was refused). */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(json) {
  const h = { Authorization: "Bearer " + (sessionStorage.getItem(TOKEN_KEY) || "") };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

let onRefused = () => {};
/** Calls `handler(error)` when the node refuses the token (401), so the page can say so. */
export function whenRefused(handler) {
  onRefused = handler;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  const error = body && body.error ? body.error : { kind: "http", message: response.statusText };
  const failed = new ApiError(response.status, error.kind, error.message, error);
  if (response.status === 401) onRefused(failed);
  return failed;
}

async function call(method, path, body, signal) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", "the node does not answer: is `cue node` still running?");
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** `GET path` as JSON. */
export async function get(path) {
  return (await call("GET", path)).json();
}

/** `POST path` with a JSON body, as JSON. */
export async function post(path, body) {
  return (await call("POST", path, body === undefined ? {} : body)).json();
}

/** Reads `response`'s body as lines of text, calling `onLine` for each. */
async function readLines(response, onLine, separator) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let at;
    while ((at = buffer.indexOf(separator)) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + separator.length);
      onLine(line);
    }
  }
  if (buffer.trim()) onLine(buffer);
}

/**
 * `POST path` answered in NDJSON: calls `onProgress` for each `{"progress"}` line; resolves
 * with the `{"done"}` value, rejects with an ApiError for `{"error"}`.
 */
export async function stream(path, body, onProgress) {
  const response = await call("POST", path, body);
  let result;
  let error;
  await readLines(response, (line) => {
    if (!line.trim()) return;
    const message = JSON.parse(line);
    if (message.progress) onProgress(message.progress);
    else if ("done" in message) result = message.done;
    else if (message.error) error = new ApiError(200, message.error.kind, message.error.message, message.error);
  }, "\n");
  if (error) throw error;
  if (result === undefined) throw new ApiError(0, "unreachable", "the node stopped answering");
  return result;
}

/**
 * Follows the live feed (`GET /v1/events`) until `signal` aborts: `onEvent(name, data)` for
 * each event. Reconnects after a break, waiting longer each time (at most 30 s).
 */
export async function follow(onEvent, onConnection, signal) {
  let wait = 1000;
  while (!signal.aborted) {
    try {
      const response = await call("GET", "/v1/events", undefined, signal);
      onConnection(true);
      wait = 1000;
      await readLines(response, (block) => {
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }, "\n\n");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
    }
    onConnection(false);
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 30000);
  }
}
