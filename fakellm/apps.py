from django.apps import AppConfig


class FakeLLMConfig(AppConfig):
    name = "fakellm"
    verbose_name = "Fake LLM (development)"
