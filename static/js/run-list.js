// Runs list: status changes of all runs from ws/runs/ (docs/events.md).
// A known row gets its badge at once and is then re-read from the server (steps, tokens, latency);
// a new run is added on the unfiltered first page, elsewhere a notice offers to reload.
import { liveSocket } from "./live-socket.js";

// run id -> true when another event came while its row was being fetched (fetch once more after).
const pending = new Map();

function table() {
  return document.getElementById("runs-table"); // replaced whole when htmx applies filters
}

async function refreshRow(runId) {
  if (pending.has(runId)) {
    pending.set(runId, true);
    return;
  }
  pending.set(runId, false);
  const url = table().dataset.rowUrl.replace("/0/", `/${runId}/`);
  try {
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const holder = document.createElement("tbody");
    holder.innerHTML = (await response.text()).trim();
    const row = holder.firstElementChild;
    const existing = document.querySelector(`tr[data-run-id="${runId}"]`);
    if (existing) {
      existing.replaceWith(row);
    } else if (table().dataset.liveInsert === "true") {
      document.querySelector("#runs-body .empty-row")?.remove();
      const body = document.getElementById("runs-body");
      // Newest first: rows are in descending id order.
      const later = [...body.querySelectorAll("tr[data-run-id]")].find((tr) => Number(tr.dataset.runId) < runId);
      body.insertBefore(row, later || null);
    }
  } finally {
    const again = pending.get(runId);
    pending.delete(runId);
    if (again) refreshRow(runId);
  }
}

function applyEvent(event) {
  if (!event.run_id) return;
  const row = document.querySelector(`tr[data-run-id="${event.run_id}"]`);
  if (row && event.status) {
    const badge = row.querySelector("[data-field=status]");
    badge.dataset.status = event.status;
    badge.textContent = event.status === "budget" ? "Budget reached" : event.status;
  }
  if (!row && table().dataset.liveInsert !== "true") {
    document.getElementById("runs-new").hidden = false;
    return;
  }
  refreshRow(event.run_id);
}

liveSocket({ path: "/ws/runs/", indicator: document.getElementById("runs-conn"), onMessage: applyEvent });
