import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.fields import CompressedTextField
from core.money import validate_currency
from llm import capabilities, crypto, egress

# A header name is an HTTP token; a value holds no line break (it would start a header of its own).
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")


def validate_headers(value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError('Extra headers must be a JSON object of strings, e.g. {"X-Team": "ml"}.')
    for name, header_value in value.items():
        if not HEADER_NAME.match(name):
            raise ValidationError(f"Header name {name!r} is not valid: use letters, digits and - _ . only, "
                                  "no spaces, colons or line breaks.")
        if HEADER_VALUE_FORBIDDEN.search(header_value):
            raise ValidationError(f"The value of header {name!r} contains a line break or NUL, which is not allowed.")


class Endpoint(models.Model):
    """An OpenAI-compatible API. The API key and extra header values are write-only: never shown."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=500, help_text="e.g. https://api.openai.com/v1 or http://127.0.0.1:8001/v1")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    default_model = models.CharField(max_length=200)
    timeout_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.1), MaxValueValidator(3600)])
    max_retries = models.PositiveSmallIntegerField(default=3, validators=[MaxValueValidator(20)])
    max_concurrency = models.PositiveIntegerField(
        default=64, validators=[MinValueValidator(1), MaxValueValidator(10000)],
        help_text="Requests in flight at once to this endpoint, across all runs in one process.",
    )
    # Shared by every run, experiment and process (llm/ratelimit.py); null: no limit.
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Requests per minute to this endpoint, shared by every run and worker. Blank: no limit.",
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Prompt and answer tokens per minute, shared by every run and worker. Blank: no limit.",
    )
    extra_headers = models.JSONField(default=dict, blank=True, validators=[validate_headers])
    enabled = models.BooleanField(default=True)
    is_mock = models.BooleanField(default=False, help_text="A local fake server, not a real model.")
    # How its steps are priced (prices.book): by the price book's entries for their model, $0 on
    # purpose (self-hosted), or by the second of LLM time.
    PRICING_TOKENS, PRICING_FREE, PRICING_PER_SECOND = "tokens", "free", "per_second"
    PRICING_CHOICES = [(PRICING_TOKENS, "By tokens, from the price book"), (PRICING_FREE, "Free (self-hosted, $0 on purpose)"),
                       (PRICING_PER_SECOND, "Per second of LLM time")]
    # db_default too: rows written by code that predates the columns (a data migration) still get them.
    pricing = models.CharField(max_length=10, choices=PRICING_CHOICES, default=PRICING_TOKENS, db_default=PRICING_TOKENS)
    price_per_second = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                           validators=[MinValueValidator(0)],
                                           help_text="With per-second pricing: the price of one second of LLM time.")
    price_currency = models.CharField(max_length=3, default="USD", db_default="USD", validators=[validate_currency],
                                      help_text="The currency of the per-second price.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM endpoint"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.pricing == self.PRICING_PER_SECOND and self.price_per_second is None:
            raise ValidationError({"price_per_second": "Per-second pricing needs a price per second."})
        # The server makes the request: the URL must not reach its metadata service or admin ports.
        problem = egress.url_problem(self.base_url) if self.base_url else None
        if problem:
            raise ValidationError({"base_url": f"This URL is not allowed: {problem}."})

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class Capability(models.Model):
    """What one model on an endpoint accepts: learned from the server's answers or set by a person.

    Shared by every process and worker (llm/capabilities.py says what each value changes in a
    request). A field named in `overridden` was set by a person and is never changed by learning.
    """

    STRUCTURED_CHOICES = [(value, label) for value, label in capabilities.STRUCTURED_LABELS.items()]
    TOKEN_LIMIT_CHOICES = [(value, value) for value in capabilities.TOKEN_LIMIT_PARAMS]
    REASONING_CHOICES = [(value, label) for value, label in capabilities.REASONING_LABELS.items()]

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="capabilities")
    model = models.CharField(max_length=200)
    structured_output = models.CharField(
        max_length=20, choices=STRUCTURED_CHOICES, default="json_schema",
        help_text="How a JSON schema is sent; each choice falls back to the next when the server rejects it.")
    stream_options = models.BooleanField(default=True, help_text="Send stream_options.include_usage when streaming.")
    stream_usage = models.BooleanField(
        default=True, help_text="The server reports token usage in streams (else tokens are counted locally).")
    token_limit_param = models.CharField(
        max_length=30, choices=TOKEN_LIMIT_CHOICES, default="max_tokens",
        help_text="The name the server wants for the answer's token limit (OpenAI reasoning models: max_completion_tokens).")
    temperature = models.BooleanField(
        default=True, help_text="The model accepts a temperature (OpenAI reasoning models only allow the default).")
    reasoning_field = models.CharField(max_length=20, choices=REASONING_CHOICES, blank=True, default="",
                                       help_text="Where the server puts the model's reasoning.")
    overridden = models.JSONField(default=list, blank=True, help_text="Fields set by a person: learning leaves them.")
    evidence = models.JSONField(default=dict, blank=True, help_text="Per field: what the server said when it was learned.")
    learned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint", "model"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "model"], name="one_capability_per_endpoint_model")]
        verbose_name = "endpoint capability"
        verbose_name_plural = "endpoint capabilities"

    def __str__(self) -> str:
        return f"{self.endpoint} · {self.model}"

    def as_capabilities(self) -> capabilities.Capabilities:
        return capabilities.Capabilities(**{name: getattr(self, name) for name in capabilities.FIELDS})


class EndpointAllowance(models.Model):
    """The shared state of an endpoint's rate limits, one row per endpoint (llm/ratelimit.py).

    Times are seconds since the epoch. `*_tat` is when the endpoint's allowance would be whole
    again (the "theoretical arrival time" of a GCRA); `paused_until` is set by a 429.
    """

    endpoint = models.OneToOneField(Endpoint, on_delete=models.CASCADE, primary_key=True, related_name="allowance")
    request_tat = models.FloatField(default=0.0)
    token_tat = models.FloatField(default=0.0)
    paused_until = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"allowance of {self.endpoint_id}"


class CachedResponse(models.Model):
    """An answer kept for identical requests (llm/cache.py), shared by every worker through the database.

    `key` is the sha256 of the canonical request (endpoint, model, messages, parameters, schema), never
    of an API key; a row is read only while `expires_at` is ahead and removed by `manage.py cache_prune`.
    """

    key = models.CharField(max_length=64, unique=True, editable=False)
    # Cascade: an endpoint's answers go with it, and nobody else can ever ask for them.
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    text = CompressedTextField(blank=True, default="")
    reasoning = CompressedTextField(blank=True, default="")
    finish_reason = models.CharField(max_length=40, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False)
    reported_cost = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0, help_text="What the original call took.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "cached response"

    def __str__(self) -> str:
        return f"{self.model} answer {self.key[:12]}"
