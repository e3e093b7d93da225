from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from blocks.models import Block
from core.versioning import VersionBase
from llm.models import Endpoint

# Keys the payload sets itself; extra parameters may not override them.
RESERVED_PARAMS = {"model", "messages", "stream", "stream_options", "response_format"}


def validate_extra_params(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Extra parameters must be a JSON object, e.g. {"logprobs": true}.')
    clash = sorted(RESERVED_PARAMS & set(value))
    if clash:
        raise ValidationError(f"Extra parameters cannot set {', '.join(clash)}: the payload sets them.")


def validate_stop(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value) or len(value) > 4:
        raise ValidationError("Stop must be a list of up to 4 non-empty strings.")


def validate_json_schema(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValidationError("The JSON schema must be a JSON object.")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise ValidationError(f"Not a valid JSON schema: {exc.message}") from exc


# A cached answer is kept at most a year.
CACHE_TTL_MAX_SECONDS = 366 * 24 * 3600

SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty")


def request_params(fields: dict[str, Any]) -> dict[str, Any]:
    """The sampling parameters that are set, plus the extra ones, from a payload's field values."""
    params = {name: fields[name] for name in SAMPLING_FIELDS if fields.get(name) is not None}
    params.update(fields.get("extra_params") or {})
    return params


class Role(models.TextChoices):
    SYSTEM = "system", "system"
    USER = "user", "user"
    ASSISTANT = "assistant", "assistant"


class Payload(models.Model):
    """The blocks and LLM settings of one chat completion call."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="payloads")
    model = models.CharField(max_length=200, blank=True, default="", help_text="Blank: the endpoint's default model.")
    temperature = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    top_p = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    max_tokens = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)])
    stop = models.JSONField(null=True, blank=True, validators=[validate_stop])
    seed = models.BigIntegerField(null=True, blank=True)
    presence_penalty = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)])
    frequency_penalty = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)])
    stream = models.BooleanField(default=False, help_text="Stream the answer token by token.")
    json_schema = models.JSONField(null=True, blank=True, validators=[validate_json_schema],
                                   help_text="Structured output: the answer must be JSON valid against this schema.")
    structured_retries = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(10)],
        help_text="With a JSON schema: how many times an invalid answer is asked again.",
    )
    extra_params = models.JSONField(default=dict, blank=True, validators=[validate_extra_params])
    pass_reasoning = models.BooleanField(
        default=False, help_text="Give later steps the model's reasoning too, in <think> tags before the answer. "
                                 "Off: later steps see the answer only; the reasoning is still recorded.")
    cache_ttl_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(CACHE_TTL_MAX_SECONDS)],
        help_text="Keep each answer this many seconds and give it back to identical requests instead of calling "
                  "the LLM again (docs/cache.md). Empty: no cache, unless a run asks for it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_model(self) -> str:
        return self.model or self.endpoint.default_model

    def request_params(self) -> dict[str, Any]:
        """The sampling parameters that are set, as the OpenAI API names them."""
        return request_params({name: getattr(self, name) for name in (*SAMPLING_FIELDS, "extra_params")})


class PayloadBlock(models.Model):
    payload = models.ForeignKey(Payload, on_delete=models.CASCADE, related_name="payload_blocks")
    block = models.ForeignKey(Block, on_delete=models.PROTECT, related_name="payload_blocks")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    position = models.PositiveIntegerField(default=0, db_index=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "block"

    def __str__(self) -> str:
        return f"{self.role}: {self.block}"


class PayloadVersion(VersionBase):
    """A payload as it was saved: settings, endpoint, model, and its blocks with the block version
    current at that save (a block's later versions do not make a payload version; releases will pin a tree)."""

    payload = models.ForeignKey(Payload, null=True, on_delete=models.SET_NULL, related_name="versions")

    class Meta:
        ordering = ["payload_id", "number"]
        constraints = [models.UniqueConstraint(fields=["payload", "number"], name="payload_version_number_unique")]
