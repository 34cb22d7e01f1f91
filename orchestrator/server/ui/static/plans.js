// Plans: ask the planner for a plan (to run at once, or to keep for review), open one by id, see its
// steps as a graph and a table, the execution it became, and execute or cancel a pending one.
// The API has no list of plans, so the plans made from this tab are remembered in its session.

import { api } from "./api.js";
import { drawDag } from "./dag.js";
import { errorBox, field, h, jsonBlock, statusBadge, time } from "./dom.js";

const RECENT_ITEM = "orchestrator.recentPlans";

function recent() {
  try {
    return JSON.parse(sessionStorage.getItem(RECENT_ITEM) || "[]");
  } catch {
    return [];
  }
}

function remember(id) {
  sessionStorage.setItem(RECENT_ITEM, JSON.stringify([id, ...recent().filter((x) => x !== id)].slice(0, 20)));
}

export async function render(main, { id }) {
  return id ? renderPlan(main, id) : renderIndex(main);
}

function renderIndex(main) {
  const query = h("textarea", { rows: 3, name: "query", required: true },
    "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and 4-star hotels near the Eiffel Tower");
  const domain = h("input", { name: "domain", value: "travel", size: 12 });
  const review = h("input", { type: "checkbox", name: "review", checked: true });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Make the plan");
  const form = h("form", { class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.replaceChildren(h("p", { class: "muted" }, "Planning…"));
    try {
      const plan = await api("/api/v1/plan", { method: "POST", body: {
        query: query.value, domain: domain.value.trim() || undefined, user: { id: "ui-user" }, execute: !review.checked } });
      remember(plan.plan_id);
      location.hash = `#/plans/${encodeURIComponent(plan.plan_id)}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
      submit.disabled = false;
    }
  } },
  h("h2", {}, "New plan"), field("What should the agents do?", query),
  h("div", { class: "actions" }, field("Domain (optional)", domain),
    h("label", {}, review, " Keep it for review (do not run yet)"), submit),
  message);
  const openId = h("input", { name: "plan", placeholder: "plan_…", size: 34, "aria-label": "Plan id" });
  const open = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    if (openId.value.trim()) location.hash = `#/plans/${encodeURIComponent(openId.value.trim())}`;
  } }, field("Open a plan by id", openId), h("button", { type: "submit" }, "Open"));
  const ids = recent();
  main.append(h("h1", {}, "Plans"), open, form, h("h2", {}, "Plans made in this session"),
    ids.length ? h("ul", {}, ids.map((planId) => h("li", {}, h("a", { href: `#/plans/${encodeURIComponent(planId)}` }, planId))))
      : h("p", { class: "muted" }, "None yet."));
  return null;
}

async function renderPlan(main, id) {
  const base = `/api/v1/plans/${encodeURIComponent(id)}`;
  let plan;
  try {
    plan = await api(base);
  } catch (error) {
    main.append(h("h1", {}, id), errorBox(error), h("p", {}, h("a", { href: "#/plans" }, "← Plans")));
    return null;
  }
  remember(id);
  const message = h("div", { "aria-live": "polite" });
  const act = (verb, body) => async (event) => {
    event.target.disabled = true;
    try {
      await api(`${base}/${verb}`, { method: "POST", body });
      main.replaceChildren();
      await renderPlan(main, id);
    } catch (error) {
      message.replaceChildren(errorBox(error));
      event.target.disabled = false;
    }
  };
  const pending = plan.status === "pending";
  const steps = plan.steps || [];
  const graph = drawDag({ steps: steps.map((step) => ({ name: step.id, type: step.type, depends_on: step.depends_on })) }, () => {});
  graph.update([]);
  main.append(
    h("p", {}, h("a", { href: "#/plans" }, "← Plans")),
    h("h1", {}, h("span", { class: "muted" }, "Plan "), id),
    h("p", {}, plan.query),
    h("div", { class: "summary" },
      cell("Status", statusBadge(plan.status)), cell("Version", String(plan.version ?? "—")),
      cell("Domain", plan.domain || "—"), cell("Planner", plan.planner || "—"), cell("Mode", plan.execution_mode || "—"),
      cell("Created", time(plan.created_at)), cell("Expires", time(plan.expires_at)),
      cell("Execution", plan.workflow_execution_id
        ? h("a", { href: `#/executions/${encodeURIComponent(plan.workflow_execution_id)}` }, plan.workflow_execution_id) : "none yet")),
    pending ? h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", onclick: act("execute", { version: plan.version, async: true }) }, "Execute plan"),
      h("button", { type: "button", class: "danger", onclick: act("cancel", { reason: "cancelled from the web UI" }) }, "Cancel plan")) : "",
    message,
    plan.error ? h("p", { class: "error" }, plan.error) : "",
    (plan.warnings || []).map((warning) => h("p", { class: "muted" }, `Warning: ${typeof warning === "string" ? warning : JSON.stringify(warning)}`)),
    h("h2", {}, "Steps"),
    h("div", { class: "dag" }, graph.element),
    h("table", { "aria-label": "Plan steps" },
      h("thead", {}, h("tr", {}, ["Id", "Type", "Agent", "Capability", "Depends on", "Description", "Parameters"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, steps.map((step) => h("tr", { dataset: { step: step.id } },
        h("td", {}, h("code", {}, step.id)), h("td", {}, step.type), h("td", {}, step.agent || "—"), h("td", {}, step.capability || "—"),
        h("td", {}, (step.depends_on || []).join(", ") || "—"), h("td", {}, step.description || ""),
        h("td", {}, jsonBlock(step.parameters, { label: "parameters" })))))),
    plan.result !== null && plan.result !== undefined ? [h("h2", {}, "Result"), jsonBlock(plan.result, { label: "result", open: true })] : "",
  );
  return null;
}

function cell(label, value) {
  return h("div", {}, h("span", {}, label), h("span", {}, value));
}
