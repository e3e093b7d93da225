"""The price book: what a model's tokens cost, from when, on which endpoints.

An entry names a model exactly or by a regular expression, optionally on one endpoint only, and
holds prices per million tokens from `effective_from` on. Which entry prices a step is
prices.book's rule (endpoint-limited over global, exact over regex, newest `effective_from` at
the step's time); two entries equally specific for one model are a tie, refused where they are
edited (prices.services) and never picked between silently.

Money is Decimal here; amounts a step costs are whole billionths of the currency (runs'
`cost_nano` columns), so sums in SQL are exact integers.
"""
import re
from collections.abc import Collection

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from core.money import validate_currency
from llm.models import Endpoint

PRICE_DIGITS = {"max_digits": 14, "decimal_places": 6}
MATCH_EXACT, MATCH_REGEX = "exact", "regex"
PRICE_FIELDS = ("input_per_million", "output_per_million", "cached_input_per_million", "reasoning_per_million")


def validate_pattern(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"“{value}” is not a regular expression: {exc}.") from exc


class Price(models.Model):
    """One price-book entry. `version` counts its edits: a step records the entry and version it was priced by."""

    MATCH_CHOICES = [(MATCH_EXACT, "Exact model name"), (MATCH_REGEX, "Regular expression (whole name)")]

    model = models.CharField(max_length=200, help_text="The model's name as sent to the server, or a regular "
                             "expression matched against the whole name.")
    match = models.CharField(max_length=5, choices=MATCH_CHOICES, default=MATCH_EXACT)
    endpoint = models.ForeignKey(Endpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="prices",
                                 help_text="Only on this endpoint; empty: on every endpoint.")
    effective_from = models.DateTimeField(help_text="Steps from this moment on are priced by this entry.")
    input_per_million = models.DecimalField(**PRICE_DIGITS, validators=[MinValueValidator(0)],
                                            help_text="Per million prompt tokens.")
    output_per_million = models.DecimalField(**PRICE_DIGITS, validators=[MinValueValidator(0)],
                                             help_text="Per million completion tokens.")
    cached_input_per_million = models.DecimalField(
        **PRICE_DIGITS, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Per million prompt tokens the server read from its cache; empty: the input price.")
    reasoning_per_million = models.DecimalField(
        **PRICE_DIGITS, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Per million reasoning tokens, where the server reports them; empty: the output price.")
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    note = models.CharField(max_length=200, blank=True, default="", help_text="Where the price comes from.")
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "endpoint_id", "-effective_from"]
        constraints = [
            *(models.CheckConstraint(condition=Q(**{f"{name}__gte": 0}) | Q(**{f"{name}__isnull": True}),
                                     name=f"price_{name}_not_negative") for name in PRICE_FIELDS),
            models.CheckConstraint(condition=Q(match__in=[MATCH_EXACT, MATCH_REGEX]), name="price_match_kind"),
            # A tie of two exact entries, as a constraint too (regex ties need the names they match: services).
            models.UniqueConstraint(fields=["model", "match", "effective_from"], condition=Q(endpoint__isnull=True),
                                    name="price_global_unique"),
            models.UniqueConstraint(fields=["endpoint", "model", "match", "effective_from"],
                                    condition=Q(endpoint__isnull=False), name="price_endpoint_unique"),
        ]

    def __str__(self) -> str:
        where = f" on {self.endpoint}" if self.endpoint_id else ""
        return f"{self.model}{where} from {self.effective_from:%Y-%m-%d}"

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        """The check constraints only: the unique ones are the exact half of the tie rule, which
        prices.services.price_tie tells on "model" with the rival's id (checked here, Django would tell it
        nameless, before the service could). The database still enforces them."""
        super().validate_constraints(exclude={*(exclude or ()), "effective_from"})

    def matches(self, name: str) -> bool:
        """Whether this entry prices a model of that name (a pattern matches the whole name)."""
        if self.match == MATCH_EXACT:
            return self.model == name
        try:
            return re.fullmatch(self.model, name) is not None
        except re.error:
            return False

    def clean(self) -> None:
        if self.match == MATCH_REGEX and self.model:
            try:
                validate_pattern(self.model)
            except ValidationError as exc:
                raise ValidationError({"model": exc.messages}) from exc
