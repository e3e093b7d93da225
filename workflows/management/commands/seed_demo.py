"""Seed a demo: an admin user, a mock LLM endpoint with a price, blocks, payloads, a 3-step workflow
and a workflow with a map, a condition and steps side by side.

Idempotent: everything is looked up by its unique name and only created when missing, so
`make run` can call it on every start. Objects a user has since edited are left as they are.
It ends with one block saying where to log in, with the admin's password the first time and how
to reset it afterwards; `make run` prints its output once the servers listen, below their logs.
"""
import datetime
import io
import os
import secrets
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from blocks.models import Block
from blocks.services import block_create
from llm.models import Endpoint
from payloads.models import Payload
from payloads.services import payload_create
from prices.models import Price
from prices.services import price_save
from workflows.models import Workflow
from workflows.services import workflow_create

SEEDED = "demo seed"

MOCK_ENDPOINT_NAME = "Local mock LLM"
OPENAI_ENDPOINT_NAME = "OpenAI"
OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEMO_WORKFLOW_NAME = "Article"
RESET_PASSWORD = ".venv/bin/python manage.py changepassword admin"
# Made up and small, so a demo run shows a cost at once; real prices are the user's (docs/prices/ has a dated file).
DEMO_PRICE = {"input_per_million": Decimal("0.10"), "output_per_million": Decimal("0.40"),
              "cached_input_per_million": Decimal("0.05"), "currency": "USD", "note": "demo price for the mock model",
              "effective_from": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)}

DEMO_BLOCKS: dict[str, tuple[str, str]] = {
    # name: (description, content)
    "writer-system": ("System prompt shared by the demo payloads.",
                      "You are a concise technical writer. Answer in plain English without preamble."),
    "outline-task": ("Step 1: an outline of the topic.",
                     "Write a short outline about {{ topic }}."),
    "paragraph-task": ("Step 2: reads the topic and the outline (an earlier step's output key).",
                       "Expand this outline about {{ topic }} into one paragraph:\n{{ outline }}"),
    "summary-task": ("Step 3: reads the output of the step just before ({{ previous }}).",
                     "Summarize this paragraph in one sentence:\n{{ previous }}"),
    # The "Claims" workflow: a map over a list, a condition, and steps side by side.
    "check-claim-task": ("Run once per claim (the step maps over the input list).",
                         "Is this claim true? Answer in one sentence: {{ claim }}"),
    "translate-task": ("Runs only when the language is not English (the step's condition).",
                       "Translate these claims to {{ language }}: {{ claims }}"),
    "verdict-task": ("Reads the list of checks (one answer per claim).",
                     "Sum up these checks in one sentence: {{ checks | join(' / ') }}"),
}

# name: (description, stream, temperature, max_tokens, [(role, block name), ...])
DEMO_PAYLOADS: dict[str, tuple[str, bool, float, int, list[tuple[str, str]]]] = {
    "outline": ("Outline of a topic, streamed token by token.", True, 0.2, 200,
                [("system", "writer-system"), ("user", "outline-task")]),
    "paragraph": ("A paragraph from the outline, streamed.", True, 0.7, 400,
                  [("system", "writer-system"), ("user", "paragraph-task")]),
    "summary": ("A one-sentence summary, not streamed.", False, 0.0, 100,
                [("system", "writer-system"), ("user", "summary-task")]),
    "check-claim": ("One claim checked (a map item).", False, 0.0, 100,
                    [("system", "writer-system"), ("user", "check-claim-task")]),
    "translate": ("A translation, when asked for.", True, 0.2, 300,
                  [("system", "writer-system"), ("user", "translate-task")]),
    "verdict": ("One sentence over every check.", False, 0.0, 100,
                [("system", "writer-system"), ("user", "verdict-task")]),
}

DEMO_STEPS = [("outline", "outline"), ("paragraph", "paragraph"), ("summary", "summary")]  # (output_key, payload)

FLOW_WORKFLOW_NAME = "Claims"
FLOW_INPUTS = [
    {"name": "claims", "default": '["Tides follow the moon.", "The sea is salty.", "Waves are a kind of fish."]',
     "description": "A JSON list of claims: the first step runs once per claim."},
    {"name": "language", "default": "en", "description": "Not en: the claims are translated too, beside the checks."},
]
FLOW_STEPS = [
    {"output_key": "checks", "payload": "check-claim", "for_each": "claims", "item_as": "claim", "on_error": "null"},
    {"output_key": "translated", "payload": "translate", "when": 'language != "en"', "default": "(not translated)"},
    {"output_key": "verdict", "payload": "verdict"},
]


class Command(BaseCommand):
    help = "Create the admin user and a demo (mock endpoint, blocks, payloads, the 'Article' workflow). Idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--fake-llm-url", default="http://127.0.0.1:8001/v1",
                            help="base URL of the mock LLM (manage.py fake_llm)")
        parser.add_argument("--site-url", default="http://127.0.0.1:8000/",
                            help="where the app is served, for the log-in line printed last")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            password = self._admin_user()
            endpoint = self._mock_endpoint(options["fake_llm_url"])
            self._mock_price(endpoint)
            self._openai_endpoint()
            blocks = self._blocks()
            payloads = self._payloads(endpoint, blocks)
            self._workflow(payloads)
            self._flow_workflow(payloads)
            # The default judges of llm-rubric / factuality assertions, on the demo's mock endpoint (by
            # command: evaluations sits above workflows).
            call_command("seed_judges", endpoint=endpoint.name, stdout=io.StringIO())
        self._login_block(options["site_url"], options["fake_llm_url"], password)

    def _login_block(self, site_url: str, fake_llm_url: str, password: str | None) -> None:
        """Printed last, so the log-in line is the one a person sees."""
        site = site_url.rstrip("/")
        if password is None:
            secret = f"password: the one printed at the first start; forgot it? {RESET_PASSWORD}"
        elif password == "":
            secret = "password: the one in ADMIN_PASSWORD"
        else:
            secret = f"password: {password}   (shown only this once; to change it: {RESET_PASSWORD})"
        rule = "=" * 78
        self.stdout.write("\n".join([
            rule, f"LLM Orchestrator at {site}/   (mock LLM at {fake_llm_url})",
            f"Log in at {site}/accounts/login/ or {site}/admin/",
            "  user: admin", f"  {secret}", rule,
        ]))

    def _say(self, created: bool, what: str) -> None:
        if created:
            self.stdout.write(self.style.SUCCESS(f"created {what}"))

    def _admin_user(self) -> str | None:
        """The new admin's generated password, "" if it came from ADMIN_PASSWORD, None if the user existed."""
        users = get_user_model()
        if users.objects.filter(username="admin").exists():
            return None  # never reset an existing user's password
        chosen = os.environ.get("ADMIN_PASSWORD", "")
        generated = "" if chosen else secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@example.com", chosen or generated)
        self.stdout.write(self.style.SUCCESS("created admin user 'admin'"))
        return generated

    def _mock_endpoint(self, base_url: str) -> Endpoint:
        endpoint, created = Endpoint.objects.get_or_create(
            name=MOCK_ENDPOINT_NAME,
            defaults={"base_url": base_url, "default_model": DEFAULT_MODEL, "is_mock": True},
        )
        self._say(created, f"endpoint '{endpoint.name}' at {base_url}")
        if not created and endpoint.is_mock and endpoint.base_url != base_url:
            # The mock's port may differ between starts (FAKE_LLM_PORT); follow it.
            endpoint.base_url = base_url
            endpoint.save(update_fields=["base_url", "updated_at"])
            self.stdout.write(f"pointed endpoint '{endpoint.name}' at {base_url}")
        return endpoint

    def _mock_price(self, endpoint: Endpoint) -> None:
        """The mock's model priced on the mock only; an entry already there (perhaps edited) is left alone."""
        if Price.objects.filter(endpoint=endpoint, model=endpoint.default_model).exists():
            return
        price_save(Price(), fields={"model": endpoint.default_model, "endpoint": endpoint, **DEMO_PRICE})
        self._say(True, f"price for '{endpoint.default_model}' on '{endpoint.name}' (made up, for the demo)")

    def _openai_endpoint(self) -> None:
        api_key = os.environ.get("OPENAI_API_KEY", "")
        if not api_key:
            return
        endpoint, created = Endpoint.objects.get_or_create(
            name=OPENAI_ENDPOINT_NAME, defaults={"base_url": OPENAI_BASE_URL, "default_model": DEFAULT_MODEL},
        )
        if created or endpoint.api_key != api_key:
            endpoint.set_api_key(api_key)
            endpoint.save(update_fields=["api_key_encrypted", "updated_at"])
        self._say(created, f"endpoint '{endpoint.name}' ({OPENAI_BASE_URL}, key from OPENAI_API_KEY)")

    def _blocks(self) -> dict[str, Block]:
        blocks = {}
        for name, (description, content) in DEMO_BLOCKS.items():
            block = Block.objects.filter(name=name).first()
            created = block is None
            if block is None:
                block = block_create(name=name, description=description, content=content, message=SEEDED)
            self._say(created, f"block '{name}'")
            blocks[name] = block
        return blocks

    def _payloads(self, endpoint: Endpoint, blocks: dict[str, Block]) -> dict[str, Payload]:
        payloads = {}
        for name, (description, stream, temperature, max_tokens, parts) in DEMO_PAYLOADS.items():
            payload = Payload.objects.filter(name=name).first()
            created = payload is None
            if payload is None:
                payload = payload_create(
                    name=name, endpoint=endpoint, description=description, model=DEFAULT_MODEL, stream=stream,
                    temperature=temperature, max_tokens=max_tokens, message=SEEDED,
                    blocks=[{"block": blocks[block_name], "role": role} for role, block_name in parts])
            self._say(created, f"payload '{name}'")
            payloads[name] = payload
        return payloads

    def _flow_workflow(self, payloads: dict[str, Payload]) -> None:
        """A workflow that is not a chain: the checks (a map) and the translation (a condition) run side by side."""
        created = not Workflow.objects.filter(name=FLOW_WORKFLOW_NAME).exists()
        if created:
            workflow_create(
                name=FLOW_WORKFLOW_NAME, inputs=FLOW_INPUTS, message=SEEDED,
                description="Checks each claim of a list (one call per claim), translates them when asked, then sums up.",
                steps=[{**step, "payload": payloads[step["payload"]]} for step in FLOW_STEPS])  # type: ignore[typeddict-item]
        self._say(created, f"workflow '{FLOW_WORKFLOW_NAME}' (a map over claims, a condition, steps side by side)")

    def _workflow(self, payloads: dict[str, Payload]) -> None:
        workflow = Workflow.objects.filter(name=DEMO_WORKFLOW_NAME).first()
        created = workflow is None
        if workflow is None:
            workflow = workflow_create(
                name=DEMO_WORKFLOW_NAME, description="Outline, then a paragraph, then a one-sentence summary of a topic.",
                inputs=[{"name": "topic", "default": "ocean tides", "description": "What the article is about."}],
                steps=[{"payload": payloads[payload_name], "output_key": output_key}
                       for output_key, payload_name in DEMO_STEPS], message=SEEDED)
        self._say(created, f"workflow '{workflow.name}' (3 steps: outline -> paragraph -> summary)")
