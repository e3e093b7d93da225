from typing import Any

from django.core.management.base import BaseCommand

from fakellm.dialects import DIALECTS
from fakellm.server import DEFAULT_MODELS, Settings, serve


class Command(BaseCommand):
    help = "Serve a deterministic OpenAI-compatible API (a mock LLM) for development and tests."
    # A standalone HTTP server: it needs no models, so a broken check elsewhere must not stop it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before the answer (first token when streaming)")
        parser.add_argument("--inter-token-ms", type=float, default=0.0, help="gap between streamed tokens")
        parser.add_argument("--tokens", type=int, default=20, help="words per reply (readable: about as many)")
        parser.add_argument("--replies", choices=["readable", "echo"], default="readable",
                            help="readable sentences made from the prompt, or the tests' predictable echo")
        parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 429 or 500")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--api-key", default="", help="require this bearer key (default: any)")
        parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated; '*' accepts any")
        parser.add_argument("--dialect", choices=list(DIALECTS), default="openai",
                            help="answer as this server does (see docs/compatibility.md)")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = Settings(
            latency_ms=options["latency_ms"], inter_token_ms=options["inter_token_ms"], tokens=options["tokens"],
            error_rate=options["error_rate"], seed=options["seed"], api_key=options["api_key"],
            models=tuple(m.strip() for m in options["models"].split(",") if m.strip()), replies=options["replies"],
            dialect=options["dialect"],
        )
        self.stdout.write(f"Fake LLM (mock, {options['dialect']} dialect) serving at http://{options['host']}:{options['port']}/v1")
        serve(options["host"], options["port"], settings)
