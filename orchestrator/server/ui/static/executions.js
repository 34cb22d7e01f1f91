// Executions: the caller's executions, newest first, filtered and paged by the server, kept live by
// the lifecycle stream (each lifecycle event re-reads the page shown, so new executions appear and
// statuses change without a reload, and a missed event costs nothing but one read).

import { api, follow } from "./api.js";
import { duration, errorBox, field, h, statusBadge, time } from "./dom.js";

const STATUSES = ["", "pending", "running", "completed", "failed", "timeout", "cancelled"];
const PAGE = 20;
const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled"]);

export async function render(main, params) {
  const offset = Math.max(0, Number(params.offset) || 0);
  const status = params.status || "";
  const workflow = params.workflow || "";
  const dialect = params.dialect || "";

  const statusSelect = h("select", { name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any")));
  const dialectSelect = h("select", { name: "dialect" },
    [["", "any"], ["v1", "v1"], ["eai", "EAI"]].map(([value, text]) => h("option", { value, selected: value === dialect }, text)));
  const workflowInput = h("input", { name: "workflow", value: workflow, placeholder: "workflow name", size: 18 });
  const searchInput = h("input", { name: "id", placeholder: "wf_exec_…", size: 30, "aria-label": "Execution id" });
  const message = h("div", { "aria-live": "polite" });
  const filters = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (statusSelect.value) query.set("status", statusSelect.value);
    if (workflowInput.value.trim()) query.set("workflow", workflowInput.value.trim());
    if (dialectSelect.value) query.set("dialect", dialectSelect.value);
    location.hash = `#/executions${query.toString() ? `?${query}` : ""}`;
  } },
  field("Status", statusSelect), field("Workflow", workflowInput), field("Dialect", dialectSelect),
  h("button", { type: "submit" }, "Filter"));
  statusSelect.addEventListener("change", () => filters.requestSubmit());
  dialectSelect.addEventListener("change", () => filters.requestSubmit());
  const search = h("form", { class: "filters", onsubmit: async (event) => {
    event.preventDefault();
    const id = searchInput.value.trim();
    if (!id) return;
    try {
      await api(`/api/v1/workflows/executions/${encodeURIComponent(id)}`);
      location.hash = `#/executions/${encodeURIComponent(id)}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  } }, field("Find by id", searchInput), h("button", { type: "submit" }, "Open"));

  const body = h("tbody");
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const live = h("span", { class: "muted" }, "connecting…");
  const pager = h("div", { class: "pager" });
  main.append(
    h("h1", {}, "Executions"),
    h("div", { class: "toolbar" }, filters, search, h("span", {}, "Live: ", live)),
    message,
    h("table", { "aria-label": "Executions, newest first" },
      h("thead", {}, h("tr", {}, ["Id", "Workflow", "Status", "Started", "Duration", "Dialect", "Tenant", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    count, pager,
  );

  const seen = new Set();
  const told = new Map(); // execution id -> the status its last lifecycle event left it in
  let first = true;
  let closed = false;
  const load = async () => {
    if (closed) return;
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status) query.set("status", status);
    if (workflow) query.set("workflow_name", workflow);
    if (dialect) query.set("dialect", dialect);
    let page;
    try {
      page = await api(`/api/v1/workflows/executions?${query}`);
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    message.replaceChildren();
    body.replaceChildren(...page.executions.map((given) => {
      // the lifecycle event can be ahead of the listing (which reads the store's summary rows): a
      // status the stream reported wins over an older one the listing still has
      const heard = told.get(given.id);
      const row = heard && !TERMINAL.has(given.status) && heard !== given.status ? { ...given, status: heard } : given;
      const link = h("a", { href: `#/executions/${encodeURIComponent(row.id)}` }, row.id);
      const tr = h("tr", { dataset: { id: row.id, status: row.status } },
        h("td", { class: "id" }, link), h("td", {}, row.workflow_name), h("td", {}, statusBadge(row.status)),
        h("td", {}, time(row.started_at)), h("td", {}, duration(row.duration_ms)), h("td", {}, row.dialect || "v1"), h("td", {}, row.tenant_id),
        h("td", {}, row.error || ""));
      if (!first && !seen.has(row.id)) tr.classList.add("fresh");
      seen.add(row.id);
      return tr;
    }));
    if (!page.executions.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No executions.")));
    first = false;
    // A safety net under the stream: while a row shown is still running, read the page again now
    // and then, so a lifecycle event the stream failed to deliver is not a status stuck for good.
    clearTimeout(poll);
    if (!closed && page.executions.some((row) => !TERMINAL.has(row.status))) poll = setTimeout(load, 5000);
    count.textContent = page.total ? `${offset + 1}–${offset + page.count} of ${page.total}` : "";
    const go = (to) => {
      const query = new URLSearchParams(params);
      query.set("offset", String(to));
      return `#/executions?${query}`;
    };
    pager.replaceChildren(
      offset > 0 ? h("a", { href: go(Math.max(0, offset - PAGE)) }, "← Newer") : "",
      offset + page.count < page.total ? h("a", { href: go(offset + PAGE) }, "Older →") : "",
    );
  };

  let timer = null;
  let poll = null;
  const reload = () => {
    if (timer === null) timer = setTimeout(() => { timer = null; load(); }, 150);
  };
  await load();
  const lifecycle = new URLSearchParams();
  if (workflow) lifecycle.set("workflow_name", workflow);
  const stream = follow(`/api/v1/workflows/executions/stream${lifecycle.toString() ? `?${lifecycle}` : ""}`, {
    onConnect: () => {
      live.textContent = "on";
      reload(); // a live-only stream: whatever happened while disconnected is read back
    },
    onEvent: (type, data) => {
      if (type.startsWith("execution.") && data && data.execution_id) {
        told.set(data.execution_id, data.status);
        setTimeout(reload, 1000); // and once more when the summary rows have surely caught up
      }
      if (type === "stream.gap" || type.startsWith("execution.")) reload();
    },
  });
  return () => {
    closed = true;
    stream.close();
    clearTimeout(timer);
    clearTimeout(poll);
  };
}
