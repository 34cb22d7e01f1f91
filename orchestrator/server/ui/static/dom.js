// Small DOM helpers: elements built with textContent (never innerHTML), so nothing the server sends
// (step outputs, error messages, user input echoed back) can inject markup.

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

// Status as text and a symbol as well as a colour (the colour comes from the class in style.css).
const SYMBOLS = {
  pending: "○", running: "▶", waiting: "‖", completed: "✓", failed: "✗", timeout: "⊘",
  cancelled: "■", skipped: "↷", retrying: "↻", healthy: "✓", unhealthy: "✗", degraded: "!",
  unknown: "?", executed: "✓", expired: "⊘", executing: "▶", waiting_for_approval: "‖",
};
export function statusBadge(status) {
  const text = status || "unknown";
  return h("span", { class: `badge status-${text}` }, `${SYMBOLS[text] || "•"} ${text}`);
}

export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

// A value as folded JSON: a summary line that opens to the whole, pretty-printed; long strings are
// shown as wrapped text rather than one escaped line.
export function jsonBlock(value, { label = "JSON", open = false } = {}) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "none");
  if (typeof value === "string") return h("pre", { class: "text" }, value);
  const text = JSON.stringify(value, null, 2);
  const count = Array.isArray(value) ? value.length : Object.keys(value).length;
  const noun = Array.isArray(value) ? "item" : "key";
  const summary = `${label}: ${count} ${noun}${count === 1 ? "" : "s"}`;
  return h("details", { class: "json", open }, h("summary", {}, summary), h("pre", {}, text));
}

export function errorBox(error) {
  const code = error && error.code ? `${error.code}: ` : "";
  return h("p", { class: "error", role: "alert" }, `${code}${error && error.message ? error.message : error}`);
}

// A labelled control. The label points at the control by id rather than wrapping it, so the control's
// accessible name is the label's text alone (a wrapped select would add its options to it).
let fields = 0;
export function field(label, control) {
  if (!control.id) control.id = `field-${++fields}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}
