import re

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from core.money import validate_currency
from core.versioning import VersionBase
from payloads.models import Payload

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a step's template can always read; inputs and outputs may not take them.
RESERVED_NAMES = {"previous", "inputs", "loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}


def validate_variable_name(value: str) -> None:
    if not NAME_RE.match(value or ""):
        raise ValidationError(f"'{value}' is not a valid variable name: use letters, digits and _ (not first).")
    if value in RESERVED_NAMES:
        raise ValidationError(f"'{value}' is reserved.")


def validate_inputs(value: object) -> None:
    """Declared inputs: [{"name": "topic", "default": "...", "description": "..."}]."""
    if not isinstance(value, list):
        raise ValidationError("Inputs must be a list of objects with a name.")
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValidationError(f"Input {i + 1} must be an object with a 'name'.")
        unknown = set(item) - {"name", "default", "description"}
        if unknown:
            raise ValidationError(f"Input '{item['name']}' has unknown fields: {', '.join(sorted(unknown))}.")
        validate_variable_name(item["name"])
        if item["name"] in seen:
            raise ValidationError(f"Input '{item['name']}' is declared twice.")
        seen.add(item["name"])
        for key in ("default", "description"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise ValidationError(f"Input '{item['name']}': {key} must be a string.")


class Workflow(models.Model):
    """An ordered chain of payloads; each step's output is a variable for later steps."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    inputs = models.JSONField(default=list, blank=True, validators=[validate_inputs])
    budget = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(0)],
                                 help_text="The cost cap of its runs unless a run sets its own; empty: none.")
    # db_default too: rows written by code that predates the column (a data migration) still get one.
    budget_currency = models.CharField(max_length=3, default="USD", db_default="USD", validators=[validate_currency])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def input_names(self) -> list[str]:
        return [item["name"] for item in self.inputs or []]


class Step(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    payload = models.ForeignKey(Payload, on_delete=models.PROTECT, related_name="steps")
    position = models.PositiveIntegerField(default=0, db_index=True)
    output_key = models.CharField(max_length=100, validators=[validate_variable_name])

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.output_key} ({self.payload})"


class WorkflowVersion(VersionBase):
    """A workflow as it was saved: description, inputs, and its steps with each payload's version then."""

    workflow = models.ForeignKey(Workflow, null=True, on_delete=models.SET_NULL, related_name="versions")

    class Meta:
        ordering = ["workflow_id", "number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_number_unique")]
