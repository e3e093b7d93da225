// LLM Tester: pick an endpoint and model, stream an answer (server-sent events over a POST), and run
// the connectivity test. The event names are in docs/events.md ("LLM Tester stream").
import { csrfToken, formatMs } from "./live-socket.js";
import { showPart, showReasoning } from "./reasoning.js";

const form = document.getElementById("tester-form");

if (form) {
  const endpointSelect = form.elements.endpoint;
  const modelInput = form.elements.model;
  const modelOptions = document.getElementById("model-options");
  const modelsStatus = document.getElementById("models-status");
  const answer = document.getElementById("answer");
  const answerStatus = document.getElementById("answer-status");
  const answerError = document.getElementById("answer-error");
  const metrics = document.getElementById("answer-metrics");
  const reasoning = answer.parentElement.querySelector("[data-field=reasoning_box]");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const testButton = document.getElementById("connectivity");
  const checks = document.getElementById("checks");
  let running = null; // AbortController of the answer being streamed
  let defaultModel = modelInput.value;

  const setStatus = (status) => {
    answerStatus.dataset.status = status;
    answerStatus.textContent = status;
  };

  async function loadModels() {
    const url = form.dataset.modelsUrl.replace("/0/", `/${endpointSelect.value}/`);
    modelsStatus.textContent = "Loading the endpoint's models…";
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) {
      modelsStatus.textContent = data.error || "Could not list models.";
      return;
    }
    modelOptions.replaceChildren(...data.models.map((name) => new Option(name, name)));
    // Follow the endpoint's default unless the person typed another model.
    if (!modelInput.value || modelInput.value === defaultModel) modelInput.value = data.default_model;
    defaultModel = data.default_model;
    modelsStatus.textContent = data.error
      ? `Could not list models (${data.error}); type a model name.`
      : `${data.models.length} model${data.models.length === 1 ? "" : "s"} listed by this endpoint.`;
  }

  function clearErrors() {
    for (const list of form.querySelectorAll(".js-errors")) list.remove();
    for (const field of form.querySelectorAll(".field.has-error")) field.classList.remove("has-error");
    answerError.hidden = true;
  }

  function showFieldErrors(errors) {
    for (const [name, problems] of Object.entries(errors)) {
      const input = form.elements[name];
      const holder = input ? input.closest(".field") : null;
      const list = document.createElement("ul");
      list.className = "errorlist js-errors";
      for (const problem of problems) {
        const item = document.createElement("li");
        item.textContent = holder ? problem.message : `${name}: ${problem.message}`;
        list.append(item);
      }
      if (holder) {
        holder.classList.add("has-error");
        holder.append(list);
      } else {
        form.prepend(list);
      }
    }
  }

  function showError(message) {
    answerError.textContent = message;
    answerError.hidden = false;
  }

  function showMetrics(data) {
    metrics.querySelector("[data-field=tokens]").textContent = `${data.prompt_tokens} in · ${data.completion_tokens} out`;
    metrics.querySelector("[data-field=estimated]").hidden = !data.tokens_estimated;
    const part = (name) => metrics.querySelector(`[data-field=${name}]`);
    showPart(part("reasoning_tokens_item"), part("reasoning_tokens"), data.reasoning_tokens, data.completion_tokens, "out");
    showPart(part("cached_tokens_item"), part("cached_tokens"), data.cached_tokens, data.prompt_tokens, "in");
    metrics.querySelector("[data-field=latency]").textContent = formatMs(data.latency_ms);
    metrics.querySelector("[data-field=ttft]").textContent = formatMs(data.ttft_ms);
    metrics.querySelector("[data-field=finish]").textContent = data.finish_reason || "—";
    metrics.hidden = false;
  }

  function applyEvent(kind, data) {
    if (kind === "delta") {
      if (answerStatus.dataset.status !== "streaming") setStatus("streaming");
      answer.append(data.text);
      answer.scrollTop = answer.scrollHeight;
    } else if (kind === "reset") {
      answer.textContent = ""; // a retried attempt starts the answer again
    } else if (kind === "done") {
      answer.textContent = data.text; // the answer alone: a leading <think> block was split off as reasoning
      showReasoning(reasoning, data.reasoning, data.reasoning_tokens);
      showMetrics(data);
      setStatus("succeeded");
    } else if (kind === "error") {
      showError(data.message);
      setStatus("failed");
    }
  }

  async function readEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        applyEvent(kind, data ? JSON.parse(data) : {});
      }
    }
  }

  async function send(event) {
    event.preventDefault();
    clearErrors();
    running?.abort();
    running = new AbortController();
    answer.textContent = "";
    showReasoning(reasoning, "", null);
    metrics.hidden = true;
    setStatus("waiting");
    sendButton.disabled = true;
    stopButton.disabled = false;
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), signal: running.signal,
        headers: { "X-CSRFToken": csrfToken() },
      });
      if (response.status === 400) {
        showFieldErrors((await response.json()).errors);
        setStatus("idle");
      } else if (!response.ok) {
        showError(`The server answered ${response.status} ${response.statusText}.`);
        setStatus("failed");
      } else {
        await readEvents(response);
      }
    } catch (error) {
      if (error.name !== "AbortError") throw error;
      setStatus("stopped");
    } finally {
      sendButton.disabled = false;
      stopButton.disabled = true;
    }
  }

  async function connectivityTest() {
    testButton.disabled = true;
    checks.innerHTML = '<p class="muted">Testing…</p>';
    const body = new FormData();
    body.append("endpoint", endpointSelect.value);
    body.append("model", modelInput.value);
    try {
      const response = await fetch(form.dataset.testUrl, {
        method: "POST", body, headers: { "X-CSRFToken": csrfToken() },
      });
      checks.innerHTML = response.ok || response.status === 400
        ? await response.text()
        : `<p class="alert alert-error">The server answered ${response.status}.</p>`;
    } finally {
      testButton.disabled = false;
    }
  }

  endpointSelect.addEventListener("change", loadModels);
  form.addEventListener("submit", send);
  stopButton.addEventListener("click", () => running?.abort());
  testButton.addEventListener("click", connectivityTest);
  if (!form.querySelector("fieldset").disabled) loadModels();
}
