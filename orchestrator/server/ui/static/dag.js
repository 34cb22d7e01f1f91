// The workflow's graph, drawn from its definition (the flat step list of the execution.started event:
// each step with its depends_on, and a parent and branch for the steps inside a parallel or condition).
//
// Each level (the top, a parallel's children, one branch of a condition) is laid out by dagre on its
// own; a container is then a node of its parent's level as large as its laid-out children, drawn as a
// labelled group. Edges join steps of the same level (depends_on stays within a level). Nodes show
// their status as text and a symbol, and the colour repeats it.

import dagre from "./vendor/dagre.esm.js";
import { svg } from "./dom.js";

const NODE_W = 190;
const NODE_H = 50;
const PAD = 14;
const LABEL = 22;
const SYMBOLS = { pending: "○", running: "▶", waiting: "‖", completed: "✓", failed: "✗", timeout: "⊘",
  cancelled: "■", skipped: "↷", retrying: "↻" };
const CONTAINERS = new Set(["parallel", "condition"]);

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

// {width, height, draw(parent, x, y)} for the steps of one level.
function layoutLevel(steps, children, context) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 46, marginx: 8, marginy: 8 });
  graph.setDefaultEdgeLabel(() => ({}));
  const boxes = new Map();
  for (const step of steps) {
    const box = CONTAINERS.has(step.type) ? layoutContainer(step, children, context) : leaf(step, context);
    boxes.set(step.name, box);
    graph.setNode(step.name, { width: box.width, height: box.height });
  }
  for (const step of steps) {
    for (const upstream of step.depends_on || []) {
      if (boxes.has(upstream)) graph.setEdge(upstream, step.name);
      else context.crossEdges.push([upstream, step.name]);
    }
  }
  dagre.layout(graph);
  const { width, height } = graph.graph();
  return {
    width: Math.max(width, 40),
    height: Math.max(height, 30),
    draw(parent, x, y) {
      for (const edge of graph.edges()) {
        const points = graph.edge(edge).points.map((p) => `${(p.x + x).toFixed(1)},${(p.y + y).toFixed(1)}`);
        parent.append(svg("path", {
          class: "edge", d: `M${points.join("L")}`, "marker-end": "url(#arrow)",
          "data-from": edge.v, "data-to": edge.w,
        }, svg("title", {}, `${edge.v} → ${edge.w}`)));
        context.edges.push([edge.v, edge.w]);
      }
      for (const name of graph.nodes()) {
        const node = graph.node(name);
        boxes.get(name).draw(parent, x + node.x - node.width / 2, y + node.y - node.height / 2);
      }
    },
  };
}

function leaf(step, context) {
  return {
    width: NODE_W,
    height: NODE_H,
    draw(parent, x, y) {
      const state = svg("text", { class: "state", x: 10, y: 38 });
      const group = svg("g", {
        class: "node n-pending", transform: `translate(${x},${y})`, tabindex: 0, role: "button",
        "data-step": step.name, "aria-label": `${step.name} (${step.type})`,
      },
      svg("title", {}, `${step.name} (${step.type})`),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { class: "name", x: 10, y: 19 }, clip(step.name, 24)),
      state);
      context.nodes.set(step.name, { group, state, step });
      parent.append(group);
    },
  };
}

function layoutContainer(step, children, context) {
  const kids = children.get(step.name) || [];
  const parts = [];
  if (step.type === "condition") {
    for (const branch of ["if_true", "if_false"]) {
      const inBranch = kids.filter((kid) => kid.branch === branch);
      parts.push({ label: branch === "if_true" ? "if true" : "if false", branch, level: layoutLevel(inBranch, children, context) });
    }
  } else {
    parts.push({ label: null, branch: null, level: layoutLevel(kids, children, context) });
  }
  const innerW = Math.max(NODE_W, ...parts.map((part) => part.level.width + (part.label ? 2 * PAD : 0)));
  let height = LABEL + PAD;
  for (const part of parts) height += part.level.height + (part.label ? LABEL + PAD : 0);
  const width = innerW + 2 * PAD;
  return {
    width,
    height,
    draw(parent, x, y) {
      const state = svg("tspan", { class: "state" });
      const group = svg("g", { class: `group group-${step.type}`, "data-group": step.name });
      group.append(svg("rect", { x, y, width, height, rx: 8 }));
      const label = svg("text", { x: x + 10, y: y + 16 }, `${step.name} · ${step.type} `, state);
      group.append(label);
      // the container is a step too: it can be focused and selected like the others
      const handle = svg("g", { class: "node n-pending container", tabindex: 0, role: "button",
        "data-step": step.name, "aria-label": `${step.name} (${step.type})` },
      svg("rect", { x: x + 4, y: y + 3, width: Math.min(width - 8, 16 + 8 * (step.name.length + step.type.length + 14)), height: 18, rx: 4, "fill-opacity": 0.6 }),
      label);
      group.append(handle);
      context.nodes.set(step.name, { group: handle, state, step });
      parent.append(group);
      let top = y + LABEL + PAD / 2;
      for (const part of parts) {
        if (part.label) {
          const branchHeight = part.level.height + LABEL;
          const branch = svg("g", { class: "group branch", "data-branch": `${step.name}:${part.branch}` },
            svg("rect", { x: x + PAD, y: top, width: innerW, height: branchHeight, rx: 6 }),
            svg("text", { x: x + PAD + 8, y: top + 15 }, part.label));
          parent.append(branch);
          context.branches.push({ condition: step.name, branch: part.branch, element: branch });
          part.level.draw(parent, x + 2 * PAD, top + LABEL);
          top += branchHeight + PAD;
        } else {
          part.level.draw(parent, x + PAD, top);
          top += part.level.height;
        }
      }
    },
  };
}

// Draws the graph; returns {element, edges, update(steps)} where update takes the execution view's
// steps ({name, status, attempts, output}) and recolours the nodes in place (focus is kept).
export function drawDag(definition, onSelect) {
  const steps = definition.steps || [];
  const children = new Map();
  for (const step of steps) {
    if (!step.parent) continue;
    if (!children.has(step.parent)) children.set(step.parent, []);
    children.get(step.parent).push(step);
  }
  const context = { nodes: new Map(), edges: [], crossEdges: [], branches: [] };
  const top = layoutLevel(steps.filter((step) => !step.parent), children, context);
  const width = top.width + 16;
  const height = top.height + 16;
  // as wide as the box allows, never wider than drawn: a large graph shrinks to fit rather than scroll
  const root = svg("svg", { width: "100%", style: `max-width:${width}px`, viewBox: `0 0 ${width} ${height}`, role: "group",
    "aria-label": `Workflow graph: ${steps.length} steps` },
  svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0L10,5L0,10z", fill: "#57606a" }))));
  top.draw(root, 8, 8);
  for (const { group, step } of context.nodes.values()) {
    group.addEventListener("click", () => onSelect(step.name));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onSelect(step.name);
      }
    });
  }
  const update = (viewSteps, selected) => {
    const byName = new Map(viewSteps.map((step) => [step.name, step]));
    for (const [name, { group, state, step }] of context.nodes) {
      const view = byName.get(name) || { status: "pending", attempts: 0 };
      const status = view.status || "pending";
      group.setAttribute("class", `${group.classList.contains("container") ? "node container" : "node"} n-${status}${name === selected ? " selected" : ""}`);
      const retries = view.attempts > 1 ? ` · ${view.attempts} attempts` : "";
      state.textContent = `${SYMBOLS[status] || "•"} ${status}${retries}`;
      group.setAttribute("aria-label", `${name} (${step.type}): ${status}${retries}`);
      group.dataset.status = status;
    }
    for (const { condition, branch, element } of context.branches) {
      const taken = byName.get(condition)?.output?.branch;
      const notTaken = taken ? taken !== branch : false;
      element.classList.toggle("not-taken", notTaken);
      element.querySelector("text").textContent = `${branch === "if_true" ? "if true" : "if false"}${notTaken ? " (not taken)" : taken ? " (taken)" : ""}`;
    }
  };
  return { element: root, edges: [...context.edges, ...context.crossEdges], update };
}
