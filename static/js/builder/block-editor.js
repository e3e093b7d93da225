// Block editor: Ctrl/Cmd+S saves the block being edited.
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "s") {
    const form = document.querySelector("#editor form");
    if (!form || form.querySelector("fieldset:disabled")) return;
    event.preventDefault();
    form.requestSubmit();
  }
});
