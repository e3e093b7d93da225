import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.money import validate_currency
from core.versioning import VersionBase
from payloads.models import Payload

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a step's template can always read; inputs and outputs may not take them.
# The most steps of one run, or items of one map, in flight at once.
MAX_PARALLEL = 64
# How many of a run's steps call their LLM at once when the workflow does not say (and did not, before it could).
DEFAULT_MAX_PARALLEL = 4
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
    max_parallel = models.PositiveSmallIntegerField(
        default=DEFAULT_MAX_PARALLEL, db_default=DEFAULT_MAX_PARALLEL,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLEL)],
        help_text="How many of a run's steps may call their LLM at the same time (steps that do not read each "
                  "other's output run side by side).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def input_names(self) -> list[str]:
        return [item["name"] for item in self.inputs or []]


class OnError(models.TextChoices):
    """What a map does with an item whose call failed."""

    FAIL = "fail", "fail the run, naming the item"
    SKIP = "skip", "record the item failed and go on without it"
    NULL = "null", "record the item failed and give null in its place"


class Step(models.Model):
    """One step: a payload whose answer becomes the variable `output_key`.

    It starts once every variable it reads is known (the engine derives the graph from what the
    templates read: workflows.graph). `when` may skip it; `for_each` runs it once per item of a list.
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    payload = models.ForeignKey(Payload, on_delete=models.PROTECT, related_name="steps")
    position = models.PositiveIntegerField(default=0, db_index=True)
    output_key = models.CharField(max_length=100, validators=[validate_variable_name])
    when = models.TextField(blank=True, default="", db_default="",
                            help_text='A condition over inputs and earlier outputs, e.g. {{ language != "en" }}; '
                                      "false skips the step. Empty: always runs.")
    default = models.TextField(blank=True, default="", db_default="",
                               help_text="The step's output when `when` skips it.")
    for_each = models.CharField(max_length=200, blank=True, default="", db_default="",
                                help_text="A list to run the payload over, once per item: an input given as a JSON "
                                          "list, or an earlier step's output or a field of it (claims.items).")
    item_as = models.CharField(max_length=100, blank=True, default="item", db_default="item",
                               validators=[validate_variable_name], verbose_name="as",
                               help_text="The item's variable name in the payload's blocks.")
    max_parallel = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLEL)],
        help_text="Items of the map in flight at once; empty: the workflow's limit.")
    on_error = models.CharField(max_length=4, choices=OnError.choices, default=OnError.FAIL, db_default=OnError.FAIL)

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
