// Payload Builder: order blocks, fill the model list from the endpoint, and "Try it" with a streamed answer.
import { readEvents, rowFromTemplate, sortableRows } from "./sortable-rows.js";

const form = document.getElementById("payload-form");
const rows = document.getElementById("block-rows");
let added = 0;

if (form && rows) {
  sortableRows(rows, { rowSelector: "[data-block-row]", changedEvent: "blocks-changed" });

  document.getElementById("add-block")?.addEventListener("click", () => {
    const blockId = document.getElementById("add-block-select").value;
    const template = form.querySelector(`template[data-block-template="${blockId}"]`);
    if (!template) return;
    const row = rowFromTemplate(template, `new${++added}`);
    row.querySelector("select[name=role]").value = document.getElementById("add-block-role").value;
    rows.append(row);
    rows.dispatchEvent(new CustomEvent("blocks-changed", { bubbles: true }));
  });

  // Model picker: the endpoint's model list as suggestions for the model field.
  const endpoint = form.querySelector("#id_endpoint");
  const modelsStatus = document.getElementById("models-status");
  const datalist = document.getElementById("model-options");
  async function loadModels() {
    if (!endpoint?.value) return;
    modelsStatus.textContent = "Loading the endpoint's models…";
    try {
      const response = await fetch(form.dataset.modelsUrl.replace("/0/", `/${endpoint.value}/`),
                                   { headers: { Accept: "application/json" } });
      const body = await response.json();
      datalist.replaceChildren(...(body.models || []).map((name) => new Option(name, name)));
      form.querySelector("#id_model").placeholder = body.default_model ? `default: ${body.default_model}` : "";
      modelsStatus.textContent = body.error ? `Model list unavailable: ${body.error}`
        : `${(body.models || []).length} models available.`;
    } catch {
      modelsStatus.textContent = "Model list unavailable.";
    }
  }
  endpoint?.addEventListener("change", loadModels);
  loadModels();

  // Try it: post the page as it is, show the answer as it streams.
  const tryButton = document.getElementById("try-it");
  const stopButton = document.getElementById("try-stop");
  const output = document.getElementById("try-output");
  const status = document.getElementById("try-status");
  const errors = document.getElementById("try-errors");
  const metrics = document.getElementById("try-metrics");
  let controller = null;

  const setStatus = (value) => { status.textContent = value; status.dataset.status = value; };
  const showErrors = (byField) => {
    errors.replaceChildren(...Object.entries(byField).flatMap(([field, list]) =>
      list.map((e) => Object.assign(document.createElement("li"), { textContent: `${field}: ${e.message}` }))));
  };

  tryButton?.addEventListener("click", async () => {
    controller = new AbortController();
    tryButton.disabled = true;
    stopButton.disabled = false;
    output.textContent = "";
    errors.replaceChildren();
    metrics.hidden = true;
    setStatus("streaming");
    try {
      const response = await fetch(form.dataset.tryUrl, {
        method: "POST", body: new FormData(form), signal: controller.signal,
        headers: { "X-CSRFToken": document.body.dataset.csrfToken },
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({ errors: { request: [{ message: response.statusText }] } }));
        showErrors(body.errors || {});
        setStatus("failed");
        return;
      }
      await readEvents(response, (kind, data) => {
        if (kind === "delta") output.textContent += data.text;
        else if (kind === "reset") output.textContent = "";
        else if (kind === "error") { showErrors({ answer: [{ message: data.message }] }); setStatus("failed"); }
        else if (kind === "done") {
          output.textContent = data.text;
          metrics.querySelector('[data-field="tokens"]').textContent = `${data.prompt_tokens} + ${data.completion_tokens}`;
          metrics.querySelector('[data-field="latency"]').textContent = `${data.latency_ms} ms`;
          metrics.querySelector('[data-field="finish"]').textContent = data.finish_reason;
          metrics.hidden = false;
          setStatus("succeeded");
        }
      });
    } catch (error) {
      if (error.name === "AbortError") setStatus("cancelled");
      else { showErrors({ answer: [{ message: String(error) }] }); setStatus("failed"); }
    } finally {
      tryButton.disabled = false;
      stopButton.disabled = true;
      controller = null;
    }
  });
  stopButton?.addEventListener("click", () => controller?.abort());
}
