// A model's reasoning, shown folded apart from its answer (templates/components/reasoning.html), and the
// token counts that say how much of a step was reasoning or read from the server's cache.

// `box` is the component's <details>; it stays as the person left it (closed at first).
export function showReasoning(box, text, tokens) {
  box.querySelector("[data-field=reasoning]").textContent = text || "";
  const count = !tokens ? "" : ` (${tokens} token${tokens === 1 ? "" : "s"})`;
  box.querySelector("[data-field=reasoning_count]").textContent = count;
  box.hidden = !text;
  if (!text) box.open = false;
}

// Fills "80 of 120 out" into `strong` and shows its item, or hides the item when `part` was not reported.
export function showPart(item, strong, part, whole, side) {
  const known = Boolean(part);  // 0 is not news: OpenAI reports 0 of each for every ordinary answer
  item.hidden = !known;
  strong.textContent = known ? `${part} of ${whole} ${side}` : "";
}
