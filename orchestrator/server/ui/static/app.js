// The shell: hash routing between the pages, the navigation and the API key dialog.
// Pages are modules exporting render(main, params) -> optional cleanup function (closing streams).

import { setApiKey, whenUnauthenticated } from "./api.js";
import { errorBox } from "./dom.js";

const routes = [
  [/^#\/executions\/([^/?]+)$/, "execution", (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^#\/executions(?:\?(.*))?$/, "executions", (m) => Object.fromEntries(new URLSearchParams(m[1] || ""))],
  [/^#\/agents(?:\/([^/?]+))?$/, "agents", (m) => ({ id: m[1] && decodeURIComponent(m[1]) })],
  [/^#\/plans(?:\/([^/?]+))?$/, "plans", (m) => ({ id: m[1] && decodeURIComponent(m[1]) })],
  [/^#\/run$/, "run", () => ({})],
];

let cleanup = null;
let generation = 0;

async function show() {
  const hash = location.hash || "#/executions";
  let page = null;
  let params = {};
  for (const [pattern, name, parse] of routes) {
    const match = hash.match(pattern);
    if (match) {
      page = name;
      params = parse(match);
      break;
    }
  }
  if (!page) {
    location.replace("#/executions");
    return;
  }
  if (cleanup) cleanup();
  cleanup = null;
  const mine = ++generation;
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.page === page || (page === "execution" && link.dataset.page === "executions");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  main.replaceChildren();
  try {
    const module = await import(`./${page}.js`);
    if (mine !== generation) return; // navigated away meanwhile
    const result = await module.render(main, params);
    if (mine !== generation) {
      if (typeof result === "function") result();
      return;
    }
    cleanup = typeof result === "function" ? result : null;
  } catch (error) {
    if (mine === generation) main.replaceChildren(errorBox(error));
  }
}

// Resolves true once the person has entered a key (the caller retries), false if they cancel.
let asking = null;
function askForKey() {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = form.elements.key.value.trim();
      form.elements.key.value = "";
      asking = null;
      if (dialog.returnValue === "save" && value) {
        setApiKey(value);
        resolve(true);
      } else {
        if (dialog.returnValue === "clear") setApiKey(null);
        resolve(false);
      }
    }, { once: true });
    dialog.showModal();
  });
  return asking;
}

whenUnauthenticated(askForKey);
document.getElementById("key-button").addEventListener("click", async () => {
  if (await askForKey()) show();
});
window.addEventListener("hashchange", show);
show();
