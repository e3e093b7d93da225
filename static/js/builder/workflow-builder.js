// Workflow Builder: add, remove and reorder inputs and steps; the check (htmx) redraws the chain.
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
}
