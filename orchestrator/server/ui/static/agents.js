// Agents: each agent's health (status, latency, last check, last error, per replica) and its
// capabilities with their parameter schemas, as GET /api/v1/agents/{id} reports them.

import { api } from "./api.js";
import { errorBox, h, statusBadge, time } from "./dom.js";

export async function render(main) {
  main.append(h("h1", {}, "Agents"));
  let list;
  try {
    list = await api("/api/v1/agents");
  } catch (error) {
    main.append(errorBox(error));
    return null;
  }
  const cards = h("div", { class: "cards" });
  main.append(h("p", { class: "muted" }, `${list.count} agents. Health is checked in the background; refresh to see the latest.`), cards);
  const details = await Promise.all(list.agents.map((agent) =>
    api(`/api/v1/agents/${encodeURIComponent(agent.id)}`).catch((error) => ({ ...agent, problem: error }))));
  cards.append(...details.map(card));
  return null;
}

function card(agent) {
  const health = agent.health || { status: agent.health_status || "unknown" };
  const latency = health.latency_ms === null || health.latency_ms === undefined ? "—" : `${health.latency_ms.toFixed(1)} ms`;
  return h("section", { class: "panel agent", dataset: { agent: agent.id }, "aria-label": `Agent ${agent.id}` },
    h("h2", {}, `${agent.name || agent.id} `, statusBadge(health.status)),
    h("p", { class: "muted" }, `${agent.id} · domain ${agent.domain || "—"} · ${agent.connector_type || ""}${agent.enabled === false ? " · disabled" : ""}`),
    agent.description ? h("p", {}, agent.description) : "",
    agent.problem ? errorBox(agent.problem) : "",
    h("div", { class: "summary" },
      h("div", {}, h("span", {}, "Latency"), h("span", {}, latency)),
      h("div", {}, h("span", {}, "Last check"), h("span", {}, time(health.last_check))),
      h("div", {}, h("span", {}, "Failures in a row"), h("span", {}, String(health.consecutive_failures ?? "—"))),
      h("div", {}, h("span", {}, "Replicas"), h("span", {}, String((agent.replicas || []).length)))),
    health.last_error ? h("p", { class: "error" }, `Last error: ${health.last_error}`) : h("p", { class: "muted" }, "Last error: none"),
    h("h3", {}, "Capabilities"),
    (agent.capabilities || []).map((capability) => typeof capability === "string"
      ? h("p", {}, capability)
      : h("details", { class: "capability" },
        h("summary", {}, h("strong", {}, capability.name), capability.description ? ` — ${capability.description}` : ""),
        parameters(capability.parameters || {}))),
  );
}

function parameters(schema) {
  const names = Object.keys(schema);
  if (!names.length) return h("p", { class: "muted" }, "No parameters.");
  return h("table", { class: "params" },
    h("thead", {}, h("tr", {}, ["Parameter", "Type", "Required", "Description"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, names.map((name) => {
      const spec = schema[name] || {};
      const extra = [spec.enum ? `one of ${spec.enum.join(", ")}` : "", spec.default !== undefined ? `default ${JSON.stringify(spec.default)}` : ""].filter(Boolean).join("; ");
      return h("tr", {}, h("td", {}, h("code", {}, name)), h("td", {}, spec.type || "any"), h("td", {}, spec.required ? "yes" : "no"),
        h("td", {}, spec.description || "", extra ? h("span", { class: "muted" }, ` (${extra})`) : ""));
    })));
}
