// Rows that can be reordered by drag and drop, by their ↑ ↓ buttons (keyboard), and removed with ✕.
// After every change the list fires `changedEvent` (bubbling) so htmx can refresh what depends on the order.

export function sortableRows(list, { rowSelector, changedEvent, onChange = () => {} }) {
  let dragged = null;

  const changed = () => {
    onChange();
    list.dispatchEvent(new CustomEvent(changedEvent, { bubbles: true }));
  };

  list.addEventListener("dragstart", (event) => {
    dragged = event.target.closest(rowSelector);
    if (!dragged) return;
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", "");  // Firefox starts a drag only with data set
  });

  list.addEventListener("dragover", (event) => {
    if (!dragged) return;
    event.preventDefault();
    const over = event.target.closest(rowSelector);
    if (!over || over === dragged) return;
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });

  list.addEventListener("drop", (event) => event.preventDefault());

  list.addEventListener("dragend", () => {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    dragged = null;
    changed();
  });

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move], button[data-remove]");
    if (!button) return;
    const row = button.closest(rowSelector);
    if (button.dataset.move === "up" && row.previousElementSibling) {
      row.parentNode.insertBefore(row, row.previousElementSibling);
    } else if (button.dataset.move === "down" && row.nextElementSibling) {
      row.parentNode.insertBefore(row.nextElementSibling, row);
    } else if (button.hasAttribute("data-remove")) {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      (next?.querySelector("button") || list.closest("section, form"))?.focus?.();
      changed();
      return;
    } else {
      return;
    }
    button.focus();  // keep the keyboard on the row that moved
    changed();
  });

  return { changed };
}

// A fresh row from a <template>, with ids made unique.
export function rowFromTemplate(template, uniqueSuffix) {
  const row = template.content.firstElementChild.cloneNode(true);
  row.querySelectorAll("[id]").forEach((el) => { el.id = el.id.replace("NEW", uniqueSuffix); });
  row.querySelectorAll("label[for]").forEach((el) => { el.htmlFor = el.htmlFor.replace("NEW", uniqueSuffix); });
  return row;
}

// Read a server-sent-events body from fetch(): calls onEvent(kind, data) for each event.
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      const data = [];
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      onEvent(kind, data.length ? JSON.parse(data.join("\n")) : {});
    }
  }
}
