// Experiment page: applies each experiment.progress of ws/experiments/{id}/ (docs/events.md) to the progress
// bar and figures, and reloads the aggregates and the results matrix now and then (and once at the end).
import { liveSocket } from "./live-socket.js";

const root = document.getElementById("experiment");
const panel = document.getElementById("experiment-progress");
const FINAL = new Set(["finished", "cancelled", "budget"]);
const RELOAD_EVERY_MS = 3000;
let status = panel.dataset.status;
let lastReload = Date.now(); // the page was rendered just now
let reloadTimer = null;

const field = (name) => panel.querySelector(`[data-field="${name}"]`);

function share(part, whole) {
  return whole ? `${(part * 100) / whole}%` : "0%";
}

function eta(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}

function showProgress(event) {
  const bar = document.getElementById("experiment-bar");
  bar.setAttribute("aria-valuemax", event.cells);
  bar.setAttribute("aria-valuenow", event.done);
  const parts = { succeeded: event.succeeded, failed: event.failed, ended: event.cancelled + event.skipped, running: event.running };
  for (const [part, count] of Object.entries(parts)) {
    bar.querySelector(`[data-part="${part}"]`).style.width = share(count, event.cells);
  }
  for (const name of ["done", "cells", "succeeded", "failed", "running", "queued", "cancelled", "skipped", "cells_per_second", "cost", "tokens"]) {
    field(name).textContent = event[name];
  }
  panel.querySelector("[data-part-line=ended]").hidden = !(event.cancelled || event.skipped);
  field("eta").textContent = eta(event.eta_seconds);
  field("eta").dataset.seconds = event.eta_seconds ?? "";
  field("unpriced").hidden = !event.unpriced;
  field("unpriced-count").textContent = event.unpriced;
  if (field("budget") && event.budget) field("budget").textContent = event.budget;
}

function showStatus(next) {
  status = next;
  panel.dataset.status = next;
  const badge = document.querySelector("#experiment-status [data-field=status]");
  badge.dataset.status = next;
  badge.textContent = next === "budget" ? "Budget reached" : next;
  const cancel = document.getElementById("cancel-form");
  if (cancel) cancel.hidden = next !== "running";
}

function showRetry(event) {
  const retry = document.getElementById("retry-form");
  if (retry) retry.hidden = !event.failed || event.status === "stopping";
}

let inflight = null; // the reload htmx is running, if any (htmx.ajax's promise)

function reloadResults() {
  // The filter and page the person is on stay as they are (the page's own query string).
  reloadTimer = null;
  lastReload = Date.now();
  inflight = window.htmx.ajax("GET", root.dataset.resultsUrl + location.search, { target: "#results", swap: "outerHTML" })
    .finally(() => { inflight = null; });
}

function scheduleReload(final) {
  if (final) {
    if (reloadTimer) clearTimeout(reloadTimer);
    // htmx drops a request on an element that has one in flight: the last reload waits for the one
    // still running, which was asked for before the last cells ended.
    (inflight || Promise.resolve()).then(reloadResults, reloadResults);
    return;
  }
  if (reloadTimer) return;
  reloadTimer = setTimeout(reloadResults, Math.max(0, lastReload + RELOAD_EVERY_MS - Date.now()));
}

const socket = liveSocket({
  path: root.dataset.wsPath,
  indicator: document.getElementById("experiment-conn"),
  shouldReconnect: () => !FINAL.has(status),
  onMessage(event) {
    if (event.type !== "experiment.progress") return;
    const wasFinal = FINAL.has(status);
    showProgress(event);
    showStatus(event.status);
    showRetry(event);
    const final = FINAL.has(event.status);
    if (!(wasFinal && final)) scheduleReload(final);
    if (final) {
      socket.stop("finished");
      document.getElementById("experiment-conn").hidden = true; // the status badge says it
    }
  },
});
