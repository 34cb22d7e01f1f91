// The public REST API and its server-sent event streams, as the UI uses them.
//
// The API key (when the server asks for one) lives in sessionStorage: asked for once per browser
// session, sent as a bearer header, never put in a URL. Streams are read with fetch() and a small
// text/event-stream parser rather than EventSource, because EventSource cannot send that header; one
// code path serves servers with and without auth, and it resumes with Last-Event-ID like EventSource.

const KEY_ITEM = "orchestrator.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// Called with no argument when the server answers 401: the shell asks for a key, then retries.
let onUnauthenticated = null;
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const key = apiKey();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

export async function api(path, { method = "GET", body, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(), signal };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (response.status === 401 && attempt === 0 && onUnauthenticated) {
      if (await onUnauthenticated()) continue; // a key was entered: once more with it
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || String(response.status),
        error.message || response.statusText, error.details);
    }
    return data;
  }
}

// Parses text/event-stream from a byte stream; calls onMessage({id, event, data}) per message.
async function readSse(body, onMessage, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { id: null, event: "message", data: [] };
  const dispatch = () => {
    if (message.data.length) onMessage({ id: message.id, event: message.event, data: message.data.join("\n") });
    message = { id: null, event: "message", data: [] };
  };
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        dispatch();
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: keep-alive, live
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") message.data.push(value);
      else if (field === "event") message.event = value;
      else if (field === "id") message.id = value;
    }
  }
}

// Follows an SSE stream: onEvent(type, data, id) per message (data parsed as JSON). Reconnects after
// a dropped connection with Last-Event-ID (the last id seen), and stops when the server ends the
// stream if `endsWhen(type)` says that event was the last, or when close() is called. onConnect runs
// on every (re)connection: a live-only stream cannot replay, so its user re-reads what it shows.
export function follow(path, { onEvent, onConnect, endsWhen = () => false, lastId = null }) {
  const controller = new AbortController();
  let finished = false;
  let delay = 500;
  const run = async () => {
    while (!finished && !controller.signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId !== null) extra["Last-Event-ID"] = String(lastId);
        const response = await fetch(path, { headers: headers(extra), signal: controller.signal });
        if (response.status === 401 && onUnauthenticated && (await onUnauthenticated())) continue;
        if (!response.ok) throw new ApiError(response.status, String(response.status), response.statusText);
        delay = 500;
        if (onConnect) onConnect();
        await readSse(response.body, (message) => {
          if (message.id !== null) lastId = message.id;
          let data = message.data;
          try {
            data = JSON.parse(data);
          } catch {
            /* not JSON: hand the text over */
          }
          onEvent(message.event, data, message.id);
          if (endsWhen(message.event)) finished = true;
        }, controller.signal);
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.status === 404) return; // nothing to follow
      }
      if (finished || controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
  return { close: () => controller.abort() };
}
