// Block editor: Ctrl/Cmd+S saves the block being edited.
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "s") {
    const form = document.querySelector("#editor form");
    if (!form || form.querySelector("fieldset:disabled")) return;
    event.preventDefault();
    form.requestSubmit();
  }
});

// The live check replaces a save's parse error: once the template parses, the error under the field is stale.
document.body.addEventListener("htmx:afterSwap", (event) => {
  const check = event.detail.target;
  if (check.id !== "template-check" || !check.querySelector("[data-check=ok]")) return;
  const field = check.closest(".field");
  field?.querySelector("#id_content_errors")?.remove();
  field?.classList.remove("has-error");
});
