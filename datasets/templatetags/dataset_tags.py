"""The run page's "Add to a dataset" form, as an inclusion tag: runs/ knows nothing of datasets."""
from __future__ import annotations

from typing import Any

from django import template

from datasets.forms import AddRunForm

register = template.Library()


@register.inclusion_tag("datasets/_add_run.html", takes_context=True)
def add_run_to_dataset(context: dict[str, Any], run: Any) -> dict[str, Any]:
    user = context.get("user")
    allowed = user is not None and user.has_perm("datasets.change_dataset")
    form = AddRunForm() if allowed and run.status == "succeeded" else None
    return {"run": run, "form": form, "has_datasets": bool(form and form.fields["dataset"].queryset.exists()),
            "csrf_token": context.get("csrf_token")}
