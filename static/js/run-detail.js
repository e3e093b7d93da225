// Run detail page: applies the events of ws/runs/{id}/ (docs/events.md) to the server-rendered page.
// Events may repeat what the state already shows, so everything is applied by step index (and map item),
// idempotently. Steps of one level of the run's graph are drawn side by side and may run at the same time,
// so no event assumes a single running step. A map step's items are cells of a grid.
import { liveSocket, formatMs } from "./live-socket.js";
import { showPart, showReasoning } from "./reasoning.js";

const root = document.getElementById("run");
const FINAL = new Set(["succeeded", "failed", "cancelled", "budget"]);
const STEP_FINAL = new Set(["succeeded", "failed", "cancelled", "copied", "skipped"]);
const STEP_DONE = new Set(["succeeded", "copied", "skipped"]);
// A failed item of a map that goes on without it (on_error skip or null) is done too.
const ITEM_DONE = new Set(["succeeded", "copied", "skipped", "failed"]);
const stepsList = document.getElementById("steps");
const template = document.getElementById("step-template");
const canStart = root.dataset.canStart === "true";
const canCancel = root.dataset.canCancel === "true";
const canReplay = root.dataset.canReplay === "true";
let runStatus = document.querySelector("#run-status [data-field=status]").dataset.status;
let stepCount = Number(root.dataset.stepCount);
const levels = JSON.parse(root.dataset.levels || "[]");
const mapSteps = new Set(JSON.parse(root.dataset.maps || "[]"));
const levelOf = (index) => levels[index] ?? index;

// Run totals as the last state had them, plus the steps recorded since; `counted` holds the
// "index/item" keys already in them (a copied step is in no total: its tokens were spent by the source run).
const tokensEl = document.getElementById("run-tokens");
const totals = {
  prompt: Number(tokensEl.dataset.prompt),
  completion: Number(tokensEl.dataset.completion),
  latency: Number(document.getElementById("run-latency").dataset.ms),
};
const counted = new Set();

const key = (index, item) => `${index}/${item || 0}`;

// index -> {el, text, itemCount, items: item number -> {status, text, value}}
const steps = new Map();
for (const el of stepsList.querySelectorAll(".step")) {
  const index = Number(el.dataset.index);
  const step = { el, text: el.querySelector("[data-field=output]").textContent, itemCount: 0, items: new Map() };
  for (const cell of el.querySelectorAll(".item-cell")) {
    step.items.set(Number(cell.dataset.item), { status: cell.dataset.status, text: "" });
    if (STEP_FINAL.has(cell.dataset.status)) counted.add(key(index, cell.dataset.item));
  }
  steps.set(index, step);
  // Items the page has no row for yet (a map that has just started) are pending cells.
  const itemCount = Number(el.querySelector("[data-field=item_count]").textContent) || 0;
  if (itemCount) ensureItems(step, itemCount);
  watchPrompt(el, index);
  watchItems(step, index);
  if (STEP_FINAL.has(el.dataset.status)) counted.add(key(index, 0));
}

function showTotals() {
  tokensEl.textContent = `${totals.prompt} in · ${totals.completion} out`;
  document.getElementById("run-latency").textContent = totals.latency ? formatMs(totals.latency) : "—";
}

function countStep(index, data) {
  const counting = key(index, data.item);
  if (counted.has(counting)) return;
  counted.add(counting);
  // A map step's own row sums its items, which are counted one by one.
  if (data.status === "copied" || data.status === "skipped" || (!data.item && isMap(index))) return;
  totals.prompt += data.prompt_tokens || 0;
  totals.completion += data.completion_tokens || 0;
  totals.latency += data.latency_ms || 0;
  showTotals();
}

function field(el, name) {
  return el.querySelector(`[data-field=${name}]`);
}

function setBadge(badge, status) {
  badge.dataset.status = status;
  badge.textContent = status === "budget" ? "Budget reached" : status;
}

function watchPrompt(el, index) {
  // The rendered messages are fetched when the prompt is first opened after the step finished.
  const details = el.querySelector("details.prompt");
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.loaded === "true") return;
    const url = root.dataset.promptUrl.replace("/steps/0/", `/steps/${index}/`);
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    field(el, "prompt").innerHTML = await response.text();
    if (STEP_FINAL.has(el.dataset.status)) details.dataset.loaded = "true";
  });
}

function isMap(index) {
  return mapSteps.has(index) || (steps.get(index)?.itemCount ?? 0) > 0;
}

// The row of the step's level, made (in level order) when its first step starts.
function levelList(index) {
  const level = levelOf(index);
  let row = [...stepsList.children].find((el) => Number(el.dataset.level) === level);
  if (!row) {
    row = document.createElement("li");
    row.className = "step-level";
    row.dataset.level = level;
    const list = document.createElement("ol");
    list.className = "level-steps";
    row.append(list);
    const after = [...stepsList.children].find((el) => Number(el.dataset.level) > level);
    stepsList.insertBefore(row, after ?? null);
  }
  return row.querySelector(".level-steps");
}

function ensureStep(index) {
  let step = steps.get(index);
  if (step) return step;
  const el = template.content.firstElementChild.cloneNode(true);
  el.dataset.index = index;
  el.id = `step-${index}`;
  field(el, "number").textContent = index + 1;
  field(el, "replay").href = `${root.dataset.replayUrl}?from_step=${index}`;
  const versions = document.getElementById("step-versions")?.content.querySelector(`[data-index="${index}"]`);
  if (versions) el.querySelector(".step-head").after(versions.cloneNode(true));
  if (mapSteps.has(index)) el.dataset.map = "true";
  step = { el, text: "", itemCount: 0, items: new Map() };
  steps.set(index, step);
  // Keep each row in step order even if events arrive for a later step first.
  const list = levelList(index);
  const after = [...list.children].find((other) => Number(other.dataset.index) > index);
  list.insertBefore(el, after ?? null);
  watchPrompt(el, index);
  watchItems(step, index);
  document.getElementById("steps-empty").hidden = true;
  return step;
}

function setStepStatus(step, status) {
  step.el.dataset.status = status;
  setBadge(field(step.el, "status"), status);
}

function setText(step, text) {
  step.text = text;
  field(step.el, "output").textContent = text;
}

function appendText(step, text) {
  const output = field(step.el, "output");
  const atBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 8;
  step.text += text;
  output.append(text);
  if (atBottom) output.scrollTop = output.scrollHeight;
}

// --- A map step's items ------------------------------------------------------------------------

function ensureItems(step, count) {
  if (count <= step.itemCount && step.itemCount) return;
  step.itemCount = Math.max(step.itemCount, count);
  const grid = field(step.el, "items");
  for (let item = 1; item <= step.itemCount; item++) {
    if (grid.querySelector(`[data-item="${item}"]`)) continue;
    const cell = document.createElement("button");
    cell.type = "button";
    cell.className = "item-cell";
    cell.dataset.item = item;
    cell.textContent = item;
    const holder = document.createElement("li");
    holder.append(cell);
    const after = [...grid.querySelectorAll(".item-cell")].find((c) => Number(c.dataset.item) > item);
    grid.insertBefore(holder, after ? after.parentElement : null);
    if (!step.items.has(item)) step.items.set(item, { status: "pending", text: "" });
    showCell(cell, step.items.get(item).status);
  }
  field(step.el, "item_count").textContent = step.itemCount;
  field(step.el, "items_box").hidden = false;
}

function showCell(cell, status) {
  cell.dataset.status = status;
  cell.title = `Item ${cell.dataset.item}: ${status}`;
  cell.setAttribute("aria-label", `Item ${cell.dataset.item}, ${status}`);
}

function setItem(step, item, status, data = {}) {
  ensureItems(step, item);
  const known = step.items.get(item) || { text: "" };
  // A finished item stays finished: a late start or delta of the same item changes nothing.
  if (STEP_FINAL.has(known.status) && !STEP_FINAL.has(status)) return;
  const entry = { ...known, status };
  if (data.item_value !== undefined) entry.value = data.item_value;
  if (data.output !== undefined) entry.text = data.output || "";
  if (data.error !== undefined) entry.error = data.error;
  step.items.set(item, entry);
  showCell(field(step.el, "items").querySelector(`[data-item="${item}"]`), status);
  const done = [...step.items.values()].filter((i) => ITEM_DONE.has(i.status)).length;
  field(step.el, "items_done").textContent = done;
  if (step.openItem === item) showItem(step, item);
  updateProgress();
}

function watchItems(step, index) {
  field(step.el, "items").addEventListener("click", (event) => {
    const cell = event.target.closest(".item-cell");
    if (!cell) return;
    const item = Number(cell.dataset.item);
    for (const other of field(step.el, "items").querySelectorAll("[aria-pressed]")) other.removeAttribute("aria-pressed");
    if (step.openItem === item) {
      step.openItem = null;
      field(step.el, "item_detail").hidden = true;
      return;
    }
    cell.setAttribute("aria-pressed", "true");
    step.openItem = item;
    showItem(step, item, index);
  });
}

async function showItem(step, item, index = Number(step.el.dataset.index)) {
  // A finished item: its value, answer, error and prompt as the server recorded them; a running one: its text so far.
  const detail = field(step.el, "item_detail");
  detail.hidden = false;
  const entry = step.items.get(item) || { status: "pending", text: "" };
  if (!STEP_FINAL.has(entry.status)) {
    detail.replaceChildren(Object.assign(document.createElement("p"), {
      className: "muted", textContent: `Item ${item} is ${entry.status}.` }));
    if (entry.text) detail.append(Object.assign(document.createElement("pre"), { className: "output", textContent: entry.text }));
    return;
  }
  const url = `${root.dataset.promptUrl.replace("/steps/0/", `/steps/${index}/`)}?item=${item}`;
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (step.openItem === item) detail.innerHTML = await response.text();
}

function setSkipped(step, data) {
  // step.skipped or a skipped response: no call was made; the output is the step's default.
  if (data.output_key) field(step.el, "output_key").textContent = data.output_key;
  setStepStatus(step, "skipped");
  setText(step, data.output || "");
  field(step.el, "skipped_note").hidden = false;
  field(step.el, "metrics").hidden = true;
  updateProgress();
}

function showCacheHit(step, data) {
  // A step answered from the response cache: its latency is the lookup's; what it saved is apart.
  const hit = data.cache_status === "hit";
  field(step.el, "latency_label").textContent = hit ? "Cache lookup" : "Latency";
  field(step.el, "cache_item").hidden = !hit;
  if (!hit) return;
  // The API gives the cost saved as a decimal; a live step.completed event gives it in billionths.
  const saved = data.cache_saved_cost != null ? data.cache_saved_cost
    : data.cache_saved_cost_nano != null ? String(data.cache_saved_cost_nano / 1e9) : null;
  const cost = saved != null ? ` · ${saved} ${data.cache_saved_cost_currency || ""}` : "";
  field(step.el, "cache_saved").textContent = `saved ${data.cache_saved_prompt_tokens} in · ` +
    `${data.cache_saved_completion_tokens} out${cost} · ${formatMs(data.cache_saved_latency_ms)} of LLM time`;
}

function setStepResult(step, data) {
  // data: a step.completed/step.failed event or a response of the run state.
  if (data.status === "skipped") {
    setSkipped(step, data);
    return;
  }
  if (data.output_key) field(step.el, "output_key").textContent = data.output_key;
  if (data.payload_name) field(step.el, "payload").textContent = data.payload_name;
  setStepStatus(step, data.status);
  setText(step, data.output || "");
  if (Array.isArray(data.output_json) && step.itemCount) ensureItems(step, data.output_json.length);
  field(step.el, "tokens").textContent = `${data.prompt_tokens} in · ${data.completion_tokens} out`;
  field(step.el, "estimated").hidden = !data.tokens_estimated;
  // The events carry reasoning and its counts only when the server reported them (docs/events.md).
  showReasoning(field(step.el, "reasoning_box"), data.reasoning, data.reasoning_tokens);
  showPart(field(step.el, "reasoning_tokens_item"), field(step.el, "reasoning_tokens"), data.reasoning_tokens,
    data.completion_tokens, "out");
  showPart(field(step.el, "cached_tokens_item"), field(step.el, "cached_tokens"), data.cached_tokens,
    data.prompt_tokens, "in");
  field(step.el, "latency").textContent = formatMs(data.latency_ms);
  showCacheHit(step, data);
  field(step.el, "ttft").textContent = formatMs(data.ttft_ms);
  const attempts = Array.isArray(data.attempts) ? data.attempts.length : data.attempts;
  field(step.el, "attempts").textContent = attempts ?? "";
  field(step.el, "metrics").hidden = false;
  const error = field(step.el, "error");
  error.textContent = data.error || "";
  error.hidden = !data.error;
  updateProgress();
}

function updateProgress() {
  // Units: a step is one, a map step one per item once its items are known.
  let total = 0;
  let done = 0;
  let withItems = false;
  for (let index = 0; index < Math.max(stepCount, steps.size); index++) {
    const step = steps.get(index);
    if (step?.itemCount) {
      withItems = true;
      total += step.itemCount;
      done += [...step.items.values()].filter((i) => ITEM_DONE.has(i.status)).length;
    } else {
      total += 1;
      done += step && STEP_DONE.has(step.el.dataset.status) ? 1 : 0;
    }
  }
  const progress = document.getElementById("run-progress");
  progress.max = total || 1;
  progress.value = done;
  const label = document.getElementById("run-progress-label");
  field(label, "done").textContent = done;
  field(label, "total").textContent = total;
  field(label, "unit").textContent = withItems ? "steps and items" : "steps";
}

function replaceStaleFlash(status) {
  // The flash of the cancel form ("Run 7 is cancelling.") is out of date once the run has ended.
  const runId = root.dataset.runId;
  const stale = new RegExp(`^Run ${runId} is (queued|running|cancelling)\\.$`);
  for (const item of document.querySelectorAll(".messages .alert")) {
    if (stale.test(item.textContent.trim())) item.textContent = `Run ${runId} is ${status}.`;
  }
}

function setRunStatus(status, error) {
  runStatus = status;
  if (FINAL.has(status)) replaceStaleFlash(status);
  setBadge(document.querySelector("#run-status [data-field=status]"), status);
  const active = !FINAL.has(status);
  document.getElementById("cancel-form").hidden = !(active && canCancel && status !== "cancelling");
  document.getElementById("rerun-form").hidden = active || !canStart;
  // A step can be replayed once the run has ended (the replay copies the steps before it).
  for (const link of stepsList.querySelectorAll("[data-field=replay]")) link.hidden = active || !canReplay;
  const note = document.getElementById("compare-source-note");
  if (note) note.hidden = !active;
  if (error !== undefined) {
    const box = document.getElementById("run-error");
    box.textContent = error || "";
    box.hidden = !error;
  }
}

function applyState(run) {
  stepCount = run.step_count;
  setRunStatus(run.status, run.error);
  Object.assign(totals, { prompt: run.prompt_tokens, completion: run.completion_tokens, latency: run.latency_ms || 0 });
  counted.clear();
  for (const response of run.responses) counted.add(key(response.index, response.item));
  showTotals();
  for (const response of run.responses) {
    if (response.item) setItem(ensureStep(response.index), response.item, response.status, response);
  }
  for (const response of run.responses) {
    if (!response.item) setStepResult(ensureStep(response.index), response);
  }
  const recorded = new Set(run.responses.map((r) => r.index));
  if (run.status === "running" && run.started_at && run.next_step < run.step_count && !recorded.has(run.next_step)) {
    const step = ensureStep(run.next_step);
    if (!STEP_FINAL.has(step.el.dataset.status)) setStepStatus(step, "running");
  }
  updateProgress();
}

function applyEvent(event) {
  applyOne(event);
  // Big fields (inputs, prompts, outputs) arrive cut: the full values are read from the API.
  if (event.truncated) loadFullState();
}

function applyOne(event) {
  switch (event.type) {
    case "run.state":
      applyState(event.run);
      if (FINAL.has(event.run.status)) {
        socket?.stop();
        refreshCharts();
        refreshCosts();
      }
      return;
    case "run.started":
    case "run.status":
      if (!FINAL.has(runStatus)) setRunStatus(event.status);
      return;
    case "step.started": {
      if (event.step_count) stepCount = event.step_count;
      const step = ensureStep(event.index);
      if (STEP_FINAL.has(step.el.dataset.status)) return;
      if (event.item) {
        ensureItems(step, event.item_count || event.item);
        if (step.el.dataset.status !== "running") setStepStatus(step, "running");
        setItem(step, event.item, "running", { item_value: event.item_value, output: "" });
        return;
      }
      field(step.el, "output_key").textContent = event.output_key;
      field(step.el, "payload").textContent = event.payload;
      // The step (re)starts: a step resumed after a server restart streams its text from the start.
      setText(step, "");
      setStepStatus(step, "running");
      updateProgress();
      return;
    }
    case "step.delta": {
      const step = ensureStep(event.index);
      if (STEP_FINAL.has(step.el.dataset.status)) return;
      if (event.item) {
        const entry = step.items.get(event.item);
        if (!entry || STEP_FINAL.has(entry.status)) return;
        if (event.reset || event.full) entry.text = event.text || "";
        else if (event.offset === entry.text.length) entry.text += event.text;
        if (step.openItem === event.item) showItem(step, event.item);
        return;
      }
      if (step.el.dataset.status !== "running") setStepStatus(step, "running");
      if (event.reset || event.full) setText(step, event.text || "");
      else if (event.offset === step.text.length) appendText(step, event.text);
      // Any other offset: a piece was missed; the next full-text delta puts it right.
      return;
    }
    case "step.completed":
    case "step.failed":
      if (event.item) setItem(ensureStep(event.index), event.item, event.status, event);
      else setStepResult(ensureStep(event.index), event);
      countStep(event.index, event);
      return;
    case "step.skipped":
      setSkipped(ensureStep(event.index), event);
      return;
    case "run.completed":
    case "run.failed":
    case "run.cancelled":
    case "run.budget_reached":
      setRunStatus(event.status, event.error || undefined);
      socket?.stop();
      refreshFinalState();
      return;
    default:
  }
}

async function readState() {
  const response = await fetch(root.dataset.apiUrl, { headers: { Accept: "application/json" } });
  if (response.ok) applyState(await response.json());
}

let fullState = null; // the read in flight, if any: cut fields of many events need one read
function loadFullState() {
  fullState ??= readState().finally(() => {
    fullState = null;
  });
  return fullState;
}

async function refreshFinalState() {
  // The final error of a cancelled run is not in its event: read the finished run once.
  await readState();
  await refreshCharts();
  await refreshCosts();
}

async function refreshCosts() {
  // Costs are worked out on the server (price, provenance, the add-a-price link) and the step events
  // do not carry them: once the run has ended, take the cost parts of the page as rendered now.
  const response = await fetch(root.dataset.stateUrl, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const total = page.getElementById("run-cost");
  if (total) document.getElementById("run-cost").replaceWith(document.importNode(total, true));
  for (const fresh of page.querySelectorAll("#steps .step")) {
    const step = steps.get(Number(fresh.dataset.index));
    const item = fresh.querySelector("[data-field=cost_item]");
    const current = step && field(step.el, "cost_item");
    if (item && current) current.replaceWith(document.importNode(item, true));
  }
}

async function refreshCharts() {
  // The per-step charts are drawn on the server: fetch them again once every step is recorded.
  const charts = document.getElementById("run-charts");
  const response = await fetch(charts.dataset.url, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const holder = document.createElement("div");
  holder.innerHTML = (await response.text()).trim();
  charts.replaceWith(holder.firstElementChild);
}

// A run that had already ended when the page was rendered has nothing more to tell.
const indicator = document.getElementById("run-conn");
let socket = null;
if (FINAL.has(runStatus)) {
  replaceStaleFlash(runStatus);
  indicator.dataset.state = "closed";
  indicator.textContent = "finished";
} else {
  socket = liveSocket({
    path: root.dataset.wsPath,
    indicator,
    onMessage: applyEvent,
    shouldReconnect: () => !FINAL.has(runStatus),
  });
}
