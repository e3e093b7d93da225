from django.core.exceptions import ValidationError
from django.db import models

from blocks import templating
from core.versioning import VersionBase


def validate_template(source: str) -> None:
    try:
        templating.check_syntax(source)
    except templating.TemplateProblem as exc:
        raise ValidationError(f"The template does not parse: {exc}") from exc


class Block(models.Model):
    """Reusable prompt text with {{ variables }}."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    content = models.TextField(validators=[validate_template])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def variables(self) -> list[str]:
        return sorted(templating.variables_of(self.content))


class BlockVersion(VersionBase):
    """A block as it was saved: name, description and template content (blocks/services.py writes it)."""

    block = models.ForeignKey(Block, null=True, on_delete=models.SET_NULL, related_name="versions")

    class Meta:
        ordering = ["block_id", "number"]
        constraints = [models.UniqueConstraint(fields=["block", "number"], name="block_version_number_unique")]
