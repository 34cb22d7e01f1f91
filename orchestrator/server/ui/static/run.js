// The run form: pick a registered workflow (the EAI dialect's, with its input schema's defaults filled
// in) or a shipped example, or paste a workflow; fill its input; run it in the background and land on
// its execution page.

import { api } from "./api.js";
import { errorBox, field, h } from "./dom.js";

// Copies of the v1 requests in the repository's examples/ (tests/test_ui.py checks they match).
const EXAMPLES = ["travel-booking.json", "condition-and-retry.json"];

export async function render(main) {
  main.append(h("h1", {}, "Run a workflow"));
  let registered = [];
  const message = h("div", { "aria-live": "polite" });
  try {
    registered = (await api("/api/eai/v3/orchestrate/workflows")).data || [];
  } catch (error) {
    message.replaceChildren(errorBox(error));
  }
  const choice = h("select", { name: "workflow" },
    h("optgroup", { label: "Examples (v1 requests)" }, EXAMPLES.map((file) => h("option", { value: `example:${file}` }, file))),
    h("optgroup", { label: "Registered workflows" }, registered.map((workflow) =>
      h("option", { value: `registered:${workflow.id}` }, `${workflow.name || workflow.id} (${workflow.id} ${workflow.version})`))),
    h("option", { value: "paste" }, "Paste your own…"));
  const definition = h("textarea", { rows: 18, name: "definition", spellcheck: false });
  const input = h("textarea", { rows: 6, name: "input", spellcheck: false }, "{}");
  const userId = h("input", { name: "user", value: sessionStorage.getItem("orchestrator.userId") || "ui-user", size: 14 });
  const about = h("p", { class: "muted" });
  const submit = h("button", { type: "submit", class: "primary" }, "Run");

  const pick = async () => {
    message.replaceChildren();
    const [kind, name] = choice.value.split(/:(.*)/s);
    try {
      if (kind === "example") {
        const request = await api(`/ui/examples/${name}`);
        definition.readOnly = false;
        definition.value = JSON.stringify(request.workflow, null, 2);
        input.value = JSON.stringify(request.input || {}, null, 2);
        about.textContent = "A v1 workflow ({metadata, spec}); edit it freely before running.";
      } else if (kind === "registered") {
        const workflow = await api(`/api/eai/v3/orchestrate/workflows/${encodeURIComponent(name)}`);
        definition.readOnly = true;
        definition.value = JSON.stringify(workflow.definition || workflow, null, 2);
        const defaults = {};
        for (const [key, spec] of Object.entries((workflow.inputSchema || {}).properties || {})) {
          if (spec && spec.default !== undefined) defaults[key] = spec.default;
        }
        input.value = JSON.stringify(defaults, null, 2);
        about.textContent = `Registered workflow ${workflow.id} ${workflow.version}: ${workflow.description || ""} (read-only here; its input is checked against its schema).`;
      } else {
        definition.readOnly = false;
        definition.value = JSON.stringify({ metadata: { name: "my-workflow" }, spec: { steps: [
          { name: "hello", type: "transform", value: "Hello {{ input.name }}" }] } }, null, 2);
        input.value = JSON.stringify({ name: "world" }, null, 2);
        about.textContent = "A v1 workflow ({metadata, spec}) or a whole request ({workflow, input, user}).";
      }
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };
  choice.addEventListener("change", pick);

  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    message.replaceChildren();
    let inputValue;
    let workflow;
    try {
      inputValue = JSON.parse(input.value || "{}");
      workflow = definition.readOnly ? null : JSON.parse(definition.value);
    } catch (error) {
      message.replaceChildren(errorBox(`not JSON: ${error.message}`));
      return;
    }
    const user = { id: userId.value.trim() || "ui-user" };
    sessionStorage.setItem("orchestrator.userId", user.id);
    submit.disabled = true;
    try {
      let started;
      if (choice.value.startsWith("registered:")) {
        const id = choice.value.slice("registered:".length);
        started = await api(`/api/eai/v3/orchestrate/workflows/${encodeURIComponent(id)}/execute`, {
          method: "POST", body: { input: inputValue, async: true, metadata: { user } } });
      } else {
        const request = workflow && workflow.workflow ? { ...workflow } : { workflow };
        request.input = workflow && workflow.workflow && !input.value.trim() ? workflow.input : inputValue;
        request.user = (workflow && workflow.user) || user;
        request.async = true;
        started = await api("/api/v1/workflows/execute", { method: "POST", body: request });
      }
      location.hash = `#/executions/${encodeURIComponent(started.id)}`;
    } catch (error) {
      const details = Array.isArray(error.details)
        ? h("ul", {}, error.details.map((d) => h("li", {}, `${d.field || ""}: ${d.message || JSON.stringify(d)}`))) : "";
      message.replaceChildren(errorBox(error), details);
      submit.disabled = false;
    }
  } },
  h("div", { class: "filters" }, field("Workflow", choice), field("Run as user id", userId)),
  about,
  field("Definition (JSON)", definition),
  field("Input (JSON)", input),
  h("div", { class: "actions" }, submit),
  message);
  main.append(form);
  await pick();
  return null;
}
