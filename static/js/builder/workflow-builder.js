// Workflow Builder: add, remove and reorder inputs and steps; the check (htmx) redraws the graph.
import { rowFromTemplate, sortableRows } from "./sortable-rows.js";

const form = document.getElementById("workflow-form");
let added = 0;

// Each step's problem list is addressed by its position, which the check answers with.
function renumberSteps() {
  form.querySelectorAll("[data-step-row]").forEach((row, index) => {
    row.querySelector("[data-step-problems]").id = `step-problems-${index + 1}`;
    row.querySelector(".step-number").textContent = `${index + 1}.`;
  });
}

if (form) {
  const steps = document.getElementById("step-rows");
  const inputs = document.getElementById("input-rows");
  sortableRows(steps, { rowSelector: "[data-step-row]", changedEvent: "steps-changed", onChange: renumberSteps });
  sortableRows(inputs, { rowSelector: "[data-input-row]", changedEvent: "steps-changed" });
  renumberSteps();

  document.getElementById("add-step")?.addEventListener("click", () => {
    const row = rowFromTemplate(document.getElementById("step-template"), `new${++added}`);
    const output = row.querySelector("input[name=step_output]");
    output.value = `step${steps.children.length + 1}`;
    steps.append(row);
    renumberSteps();
    output.focus();
    steps.dispatchEvent(new CustomEvent("steps-changed", { bubbles: true }));
  });

  document.getElementById("add-input")?.addEventListener("click", () => {
    const row = rowFromTemplate(document.getElementById("input-template"), `new${++added}`);
    inputs.append(row);
    row.querySelector("input").focus();
  });

  // A node of the graph opens its step's row: the problems marked on the node are listed there.
  const openStep = (node) => {
    const row = form.querySelectorAll("[data-step-row]")[Number(node.dataset.step) - 1];
    if (!row) return;
    if (node.dataset.state !== "ok") row.querySelector("[data-step-flow]").open = true;
    row.scrollIntoView({ block: "center" });
    row.querySelector("input[name=step_output]").focus();
  };
  form.addEventListener("click", (event) => {
    const node = event.target.closest(".graph-node");
    if (node) openStep(node);
  });
  form.addEventListener("keydown", (event) => {
    const node = event.target.closest?.(".graph-node");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openStep(node);
    }
  });
}
