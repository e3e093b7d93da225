// A WebSocket that reconnects after a drop, with a growing delay, and shows its state.
// The server sends the full state again on every connect (docs/events.md), so nothing is missed.

const GIVE_UP_CODES = new Set([4401, 4403, 4404]); // not logged in, not allowed, no such run

export function liveSocket({ path, onMessage, indicator, shouldReconnect = () => true }) {
  let delay = 500;
  let socket = null;
  let stopped = false;

  const show = (state, text) => {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.addEventListener("open", () => {
      delay = 500;
      show("live", "live");
    });
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      if (stopped) return;
      if (GIVE_UP_CODES.has(event.code)) {
        show("closed", event.code === 4401 ? "signed out: reload to log in" : "not allowed to watch live");
        return;
      }
      if (!shouldReconnect()) {
        show("closed", "finished");
        return;
      }
      show("reconnecting", "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    });
  };

  connect();
  return {
    stop(label = "finished") {
      stopped = true;
      show("closed", label);
      if (socket) socket.close(1000);
    },
  };
}

export function csrfToken() {
  return document.body.dataset.csrfToken || "";
}

export function formatMs(value) {
  if (value === null || value === undefined || value === "") return "—";
  return value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(2)} s`;
}
