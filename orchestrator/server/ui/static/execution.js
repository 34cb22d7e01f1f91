// One execution: its graph (live), a timeline of step attempts, the event log streaming in, each
// step's input, output and error, LLM text as it streams, and the actions a person can take (cancel,
// approve or reject a waiting approval, send an awaited signal).

import { api, follow } from "./api.js";
import { drawDag } from "./dag.js";
import { duration, errorBox, field, h, jsonBlock, statusBadge, time } from "./dom.js";

const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled"]);
const ENDS = new Set(["execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out"]);
const USER_ITEM = "orchestrator.userId";

export async function render(main, { id }) {
  const base = `/api/v1/workflows/executions/${encodeURIComponent(id)}`;
  let view;
  let events;
  try {
    [view, { events }] = await Promise.all([api(base), api(`${base}/events`)]);
  } catch (error) {
    main.append(h("h1", {}, id), errorBox(error), h("p", {}, h("a", { href: "#/executions" }, "← Executions")));
    return null;
  }
  const started = events.find((event) => event.type === "execution.started");
  const definition = (started && started.data.workflow) || { steps: view.steps.map((s) => ({ name: s.name, type: s.type, parent: s.parent })) };
  let lastSeq = events.length ? events[events.length - 1].seq : 0;
  let selected = null;
  const progress = new Map(); // step -> {attempt, text}: LLM text of the running attempt

  const title = h("h1", {}, h("span", { class: "muted" }, "Execution "), id);
  const summary = h("div", { class: "summary" });
  const actions = h("div", { class: "actions" });
  const waiting = h("div", { "aria-live": "polite" });
  const notice = h("div", { "aria-live": "assertive" });
  const dag = drawDag(definition, (name) => select(name));
  const dagBox = h("div", { class: "dag", "aria-describedby": "edge-list" }, dag.element);
  const edgeList = h("details", { id: "edge-list" }, h("summary", {}, `Dependencies (${dag.edges.length})`),
    h("ul", { class: "edges" }, dag.edges.map(([from, to]) => h("li", { dataset: { from, to } }, `${from} → ${to}`))));
  const timeline = h("div", { class: "timeline", role: "list", "aria-label": "Timeline of step attempts" });
  const eventRows = h("tbody");
  const eventBox = h("div", { class: "events" }, h("table", { "aria-label": "Event log" },
    h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Step", "Data"].map((t) => h("th", { scope: "col" }, t)))), eventRows));
  const details = h("section", { class: "panel step-details", "aria-live": "polite", "aria-label": "Step details" });
  const output = h("section", { class: "panel" });

  main.append(
    h("p", {}, h("a", { href: "#/executions" }, "← Executions")),
    title, summary, actions, notice, waiting,
    h("div", { class: "layout" },
      h("div", {},
        h("h2", {}, "Graph"), h("p", { class: "muted" }, "Select a step (click, or Tab then Enter) to see its input, output and error."),
        dagBox, edgeList,
        h("h2", {}, "Timeline"), timeline,
        h("h2", {}, "Events"), eventBox),
      h("div", {}, h("h2", {}, "Step"), details, h("h2", {}, "Execution output"), output)),
  );

  function renderSummary() {
    summary.replaceChildren(
      item("Status", statusBadge(view.status)),
      item("Workflow", `${view.workflow_name}${view.workflow_version ? ` ${view.workflow_version}` : ""}`),
      item("Tenant", view.tenant_id),
      item("Started", time(view.started_at)),
      item("Completed", time(view.completed_at)),
      item("Duration", duration(view.duration_ms ?? (view.started_at ? Date.now() - Date.parse(view.started_at) : null))),
      item("Dialect", (started && started.data.dialect) || "v1"),
    );
    summary.dataset.status = view.status;
    const cancel = h("button", { type: "button", class: "danger", disabled: TERMINAL.has(view.status) }, "Cancel execution");
    cancel.addEventListener("click", async () => {
      if (cancel.dataset.armed !== "yes") {
        cancel.dataset.armed = "yes";
        cancel.textContent = "Confirm: cancel it";
        return;
      }
      cancel.disabled = true;
      try {
        view = await api(`${base}/cancel`, { method: "POST" });
        refreshAll();
      } catch (error) {
        notice.replaceChildren(errorBox(error));
      }
    });
    actions.replaceChildren(TERMINAL.has(view.status) ? "" : cancel);
    output.replaceChildren(
      view.error ? h("p", { class: "error" }, view.error) : "",
      TERMINAL.has(view.status) ? jsonBlock(view.output, { label: "output", open: true }) : h("p", { class: "muted" }, "Not finished yet."),
      h("h3", {}, "Input"), jsonBlock(view.input, { label: "input" }),
    );
  }

  function renderWaiting() {
    waiting.replaceChildren(...(view.waiting_for || []).map((wait) => {
      const userId = h("input", { value: sessionStorage.getItem(USER_ITEM) || "ui-user", size: 14, name: "user" });
      const role = h("input", { size: 12, name: "role", placeholder: "optional" });
      const user = () => {
        sessionStorage.setItem(USER_ITEM, userId.value.trim());
        return role.value.trim() ? { id: userId.value.trim(), role: role.value.trim() } : { id: userId.value.trim() };
      };
      const error = h("div");
      if (wait.kind === "approval") {
        const comment = h("input", { size: 30, name: "comment" });
        const decide = async (approved) => {
          try {
            view = await api(`${base}/approvals/${encodeURIComponent(wait.step)}`, {
              method: "POST", body: { approved, comment: comment.value || null, user: user() } });
            refreshAll();
          } catch (problem) {
            error.replaceChildren(errorBox(problem));
          }
        };
        return h("section", { class: "panel waiting", dataset: { step: wait.step }, "aria-label": `Approval ${wait.step}` },
          h("h2", {}, `Waiting for approval: ${wait.step}`),
          wait.prompt ? h("p", {}, wait.prompt) : "",
          h("p", { class: "muted" }, `Approvers: ${(wait.approvers && wait.approvers.length) ? wait.approvers.join(", ") : "anyone"} · since `, time(wait.since)),
          h("div", { class: "actions" }, field("Your user id", userId), field("Role", role), field("Comment", comment),
            h("button", { type: "button", class: "primary", onclick: () => decide(true) }, `Approve ${wait.step}`),
            h("button", { type: "button", class: "danger", onclick: () => decide(false) }, `Reject ${wait.step}`)),
          error);
      }
      const payload = h("textarea", { rows: 3, name: "payload" }, "{}");
      const send = async () => {
        let body;
        try {
          body = JSON.parse(payload.value || "null");
        } catch (problem) {
          error.replaceChildren(errorBox(`payload is not JSON: ${problem.message}`));
          return;
        }
        try {
          await api(`${base}/signals/${encodeURIComponent(wait.signal || wait.step)}`, { method: "POST", body: { payload: body, user: user() } });
          error.replaceChildren();
        } catch (problem) {
          error.replaceChildren(errorBox(problem));
        }
      };
      return h("section", { class: "panel waiting", dataset: { step: wait.step } },
        h("h2", {}, `Waiting for signal "${wait.signal}": ${wait.step}`),
        wait.prompt ? h("p", {}, wait.prompt) : "",
        field("Payload (JSON)", payload),
        h("div", { class: "actions" }, field("Your user id", userId), h("button", { type: "button", class: "primary", onclick: send }, "Send signal")),
        error);
    }));
  }

  function renderTimeline() {
    const attempts = [];
    const open = new Map();
    for (const event of events) {
      if (!event.step) continue;
      const at = Date.parse(event.timestamp);
      if (event.type === "step.started") {
        const bar = { step: event.step, attempt: event.data.attempt || 1, start: at, end: null, result: "running" };
        attempts.push(bar);
        open.set(event.step, bar);
      } else if (["step.completed", "step.failed", "step.retrying"].includes(event.type)) {
        const bar = open.get(event.step);
        if (bar) {
          bar.end = at;
          bar.result = event.type === "step.completed" ? "completed" : "failed";
          open.delete(event.step);
        }
      }
    }
    const start = Date.parse(view.started_at || (events[0] && events[0].timestamp)) || Date.now();
    const end = view.completed_at ? Date.parse(view.completed_at) : Date.now();
    const span = Math.max(end - start, 1);
    const rows = new Map();
    for (const bar of attempts) {
      if (!rows.has(bar.step)) rows.set(bar.step, []);
      rows.get(bar.step).push(bar);
    }
    const statusOf = new Map(view.steps.map((step) => [step.name, step.status]));
    timeline.replaceChildren(...[...rows].flatMap(([step, bars]) => [
      h("div", { class: "name", title: step, role: "listitem" }, step),
      h("div", { class: "track" }, bars.map((bar) => {
        const stop = bar.end ?? end;
        const result = bar.end === null ? (statusOf.get(step) === "waiting" ? "waiting" : "running") : bar.result;
        const text = `attempt ${bar.attempt}: ${duration(stop - bar.start)} ${result}`;
        const width = Math.max(((stop - bar.start) / span) * 100, 0.6);
        const left = Math.min(Math.max(((bar.start - start) / span) * 100, 0), 100 - width);
        return h("div", { class: `bar status-${result}`, title: text, "aria-label": `${step} ${text}`,
          style: `left:${left}%;width:${width}%` },
        `${bars.length > 1 ? `#${bar.attempt} ` : ""}${duration(stop - bar.start)}`);
      })),
    ]));
    if (!rows.size) timeline.append(h("p", { class: "muted" }, "No step has started."));
  }

  function eventRow(event) {
    const data = event.data || {};
    const brief = data.error || data.reason || (data.attempt ? `attempt ${data.attempt}` : "");
    return h("tr", { dataset: { seq: event.seq, type: event.type } },
      h("td", {}, event.seq), h("td", {}, clock(event.timestamp)), h("td", {}, event.type), h("td", {}, event.step || ""),
      h("td", {}, brief ? h("span", {}, `${brief} `) : "", Object.keys(data).length ? jsonBlock(data, { label: "data" }) : ""));
  }

  function renderDetails() {
    if (!selected) {
      details.replaceChildren(h("p", { class: "muted" }, "No step selected."));
      return;
    }
    const step = view.steps.find((s) => s.name === selected) || { name: selected, status: "pending", attempts: 0 };
    const definitionStep = (definition.steps || []).find((s) => s.name === selected) || {};
    const startedEvents = events.filter((event) => event.type === "step.started" && event.step === selected);
    const request = startedEvents.length ? startedEvents[startedEvents.length - 1].data.request : null;
    const live = progress.get(selected);
    details.replaceChildren(
      h("h3", {}, `${selected} `, statusBadge(step.status)),
      h("div", { class: "summary" },
        item("Type", step.type || definitionStep.type), item("Attempts", String(step.attempts ?? 0)),
        item("Started", time(step.started_at)), item("Completed", time(step.completed_at)),
        item("Time", step.process_time || "—"), item("Depends on", (definitionStep.depends_on || []).join(", ") || "—")),
      step.error ? h("div", {}, h("h4", {}, "Error"), h("pre", { class: "text error" }, step.error)) : "",
      live ? h("div", {}, h("h4", {}, step.status === "running"
        ? `LLM text (attempt ${live.attempt}, streaming…)`
        : `LLM text as it streamed (attempt ${live.attempt}, ${live.pieces} pieces)`),
      h("div", { class: "llm", "aria-live": "off" }, live.text)) : "",
      h("h4", {}, "Input"), jsonBlock(request, { label: "input", open: true }),
      h("h4", {}, "Output"), jsonBlock(step.output, { label: "output", open: true }),
      h("details", {}, h("summary", {}, "Definition"), h("pre", {}, JSON.stringify(definitionStep, null, 2))),
    );
  }

  function select(name) {
    selected = name;
    dag.update(view.steps, selected);
    renderDetails();
  }

  function refreshAll() {
    renderSummary();
    renderWaiting();
    dag.update(view.steps, selected);
    renderTimeline();
    renderDetails();
  }

  refreshAll();
  eventRows.append(...events.map(eventRow));

  let timer = null;
  const reload = () => {
    if (timer !== null) return;
    timer = setTimeout(async () => {
      timer = null;
      try {
        view = await api(base);
        refreshAll();
      } catch (error) {
        notice.replaceChildren(errorBox(error));
      }
    }, 100);
  };
  let ticker = null;
  let stream = null;
  if (!TERMINAL.has(view.status)) {
    ticker = setInterval(() => { if (!TERMINAL.has(view.status)) { renderTimeline(); } }, 1000);
    stream = follow(`${base}/stream`, {
      lastId: lastSeq,
      endsWhen: (type) => ENDS.has(type),
      onEvent: (type, data) => {
        if (type === "step.progress") {
          const current = progress.get(data.step);
          if (!current || current.attempt !== data.attempt) {
            progress.set(data.step, { attempt: data.attempt, text: data.delta, pieces: 1 });
          } else {
            current.text += data.delta;
            current.pieces += 1;
          }
          if (data.step === selected) renderDetails();
          return;
        }
        if (!data || typeof data.seq !== "number" || data.seq <= lastSeq) return;
        lastSeq = data.seq;
        events.push(data);
        const nearBottom = eventBox.scrollTop + eventBox.clientHeight >= eventBox.scrollHeight - 30;
        eventRows.append(eventRow(data));
        if (nearBottom) eventBox.scrollTop = eventBox.scrollHeight;
        reload();
      },
    });
  }
  return () => {
    if (stream) stream.close();
    clearTimeout(timer);
    clearInterval(ticker);
  };
}

// the time of day to the millisecond: events of one execution are often milliseconds apart
function clock(iso) {
  const date = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return h("time", { datetime: iso, title: iso },
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`);
}

function item(label, value) {
  return h("div", {}, h("span", {}, label), h("span", {}, value));
}
